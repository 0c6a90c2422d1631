"""Phase 2: delete what a verified marker covers, with a write-ahead, append-only audit."""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from llmmon.lifecycle.plan import Action, Plan, expired_markers, plan
from llmmon.lifecycle.policy import INTENT_PREFIX, RetentionConfig, retention_config
from llmmon.lifecycle.rollup import (
    RollupError,
    marker_is_current,
    rollup_day,
    rollup_hour,
    rollup_processed,
    rollup_stream,
)
from llmmon.store.objects import ObjectStore, StorageError

if TYPE_CHECKING:

    from llmmon.config import Config

log = logging.getLogger(__name__)


# ---- audit --------------------------------------------------------------------------------------

audit_metadata = sa.MetaData()

retention_audit = sa.Table(
    "retention_audit", audit_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False, index=True),
    sa.Column("as_of", sa.Date, nullable=True, index=True),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("tier", sa.String(20), nullable=False),
    sa.Column("policy", sa.String(80), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False, default=0),
    sa.Column("etag", sa.String(200), nullable=True),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("hold_id", sa.String(200), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
)

#: Actions recorded in the audit.
AUDIT_ACTIONS = ("deleted", "exempt_legal_hold", "would_delete", "refused_locked", "delete_failed",
                 "skipped_unverified", "skipped_changed", "rollup_verified", "rollup_failed",
                 "forgot_user", "export_user",
                 # write-ahead (issue 11): intent before the change, outcome after
                 "delete_intent", "delete_not_done", "forget_intent", "forget_checked",
                 "forget_unreadable", "forget_failed")


# PostgreSQL statements that make retention_audit append-only (also in sql/warehouse.sql).
POSTGRES_APPEND_ONLY_DDL = (
    "CREATE OR REPLACE FUNCTION llmmon_retention_audit_append_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'retention_audit is append-only'; END $$",
    "CREATE OR REPLACE TRIGGER retention_audit_append_only BEFORE UPDATE OR DELETE "
    "ON retention_audit FOR EACH ROW EXECUTE FUNCTION llmmon_retention_audit_append_only()",
)


def create_tables(engine: sa.Engine) -> None:
    """Create ``retention_audit`` and make it append-only (UPDATE/DELETE raise) on SQLite/PostgreSQL."""
    audit_metadata.create_all(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for op in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER IF NOT EXISTS retention_audit_no_{op.lower()} BEFORE {op} "
                    f"ON retention_audit BEGIN SELECT RAISE(ABORT, 'retention_audit is append-only'); END")
        elif engine.dialect.name == "postgresql":
            for stmt in POSTGRES_APPEND_ONLY_DDL:
                conn.exec_driver_sql(stmt)


class _Audit:
    """Buffers audit rows; flushes them to the warehouse in batches and to one object per attempt."""

    def __init__(self, store: ObjectStore, engine: sa.Engine | None, run_id: str, as_of: date,
                 cfg: RetentionConfig, batch: int = 200):
        self.store, self.engine, self.run_id, self.as_of, self.cfg = store, engine, run_id, as_of, cfg
        self.batch = batch
        self.rows: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        self.key: str | None = None

    def record(self, action: str, a: Action | None = None, **kw: Any) -> None:
        row = {"recorded_at": datetime.now(UTC), "run_id": self.run_id, "as_of": self.as_of,
               "action": action, "key": a.key if a else kw.pop("key"),
               "kind": a.kind if a else kw.pop("kind", ""), "tier": a.tier if a else kw.pop("tier", ""),
               "policy": a.policy if a else kw.pop("policy", ""), "size": a.size if a else kw.pop("size", 0),
               "etag": a.etag if a else kw.pop("etag", None), "sha256": kw.pop("sha256", None),
               "hold_id": a.hold if a else kw.pop("hold_id", None), "detail": kw.pop("detail", None)}
        if a is not None and a.detail and not row["detail"]:
            row["detail"] = a.detail
        row.update(kw)
        self.rows.append(row)
        self.pending.append(row)
        if len(self.pending) >= self.batch:
            self.flush_db()

    def flush_db(self) -> None:
        if self.engine is not None and self.pending:
            if not getattr(self, "_created", False):
                create_tables(self.engine)
                self._created = True
            with self.engine.begin() as conn:
                conn.execute(retention_audit.insert(), self.pending)
        self.pending = []

    def _base(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.+=-]", "_", self.run_id)
        return f"audit/dt={self.as_of.isoformat()}/{safe}"

    def _put_rows(self, key: str, rows: list[dict[str, Any]]) -> None:
        body = "".join(json.dumps(r, default=str, sort_keys=True) + "\n" for r in rows).encode()
        until = None
        if self.cfg.audit_write_once:
            until = datetime.combine(self.as_of, time(), tzinfo=UTC) + timedelta(
                days=366 * self.cfg.compliance_years)
        self.store.put(key, body, content_type="application/x-ndjson", retain_until=until)

    def intent(self, action: str, items: list[Action], detail: str | None = None) -> str:
        """Write-ahead: durably record (warehouse rows and one audit object) what is about to be
        changed, *before* changing it. Returns the intent key; :meth:`done` closes it."""
        if not hasattr(self, "_attempt"):
            self._attempt = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            self._seq = 0
        self._seq += 1
        # Under audit/intents/ (not audit/dt=...): one small object per batch, kept as long as the audit.
        key = f"{self._base().replace('audit/', INTENT_PREFIX, 1)}.{self._attempt}.intent-{self._seq:04d}.jsonl"
        rows = []
        for a in items:
            self.record(action, a, detail=detail)
            rows.append(self.rows[-1])
        self.flush_db()
        self._put_rows(key, rows)
        return key

    def done(self, intent_key: str, rows: list[dict[str, Any]]) -> None:
        """Close a write-ahead intent: the outcome rows of its items (flushed at once)."""
        self.flush_db()
        self._put_rows(intent_key.replace(".intent-", ".done-"), rows)

    def close(self) -> None:
        """Flush remaining rows and write ``audit/dt=<as_of>/<run_id>[.n].jsonl`` (never overwrites)."""
        self.flush_db()
        if not self.rows:
            return
        base = self._base()
        key, n = f"{base}.jsonl", 1
        while self.store.head(key) is not None:
            n += 1
            key = f"{base}.{n}.jsonl"
        self._put_rows(key, self.rows)
        self.key = key


# ---- phase 2 + apply ----------------------------------------------------------------------------

@dataclass
class RetentionResult:
    run_id: str
    as_of: date
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)                  # action -> n
    by_tier_kind: dict[str, dict[str, Any]] = field(default_factory=dict)  # "tier/kind" -> {action: {n, bytes}}
    bytes_freed: int = 0
    rollups_verified: int = 0
    rollup_failures: list[str] = field(default_factory=list)
    audit_key: str | None = None
    lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["as_of"] = self.as_of.isoformat()
        return d


def _tally(res: RetentionResult, action: str, a: Action) -> None:
    res.counts[action] = res.counts.get(action, 0) + 1
    slot = res.by_tier_kind.setdefault(f"{a.tier}/{a.kind}", {}).setdefault(action, {"n": 0, "bytes": 0})
    slot["n"] += 1
    slot["bytes"] += a.size


def _is_lock_error(exc: Exception) -> bool:
    s = str(exc)
    return "retention-locked" in s or "AccessDenied" in s or "ObjectLock" in s or "WORM" in s


def _run_phase1(store: ObjectStore, p: Plan, run_id: str, audit: _Audit, res: RetentionResult) -> None:
    by_marker: dict[str, set[tuple[str, int, str]]] = defaultdict(set)
    for a in p.deletes:
        if a.requires:
            by_marker[a.requires].add((a.key, a.size, a.etag))
    for r in p.rollups:
        if marker_is_current(store, r.key, by_marker.get(r.key, set())):
            continue
        try:
            if r.op == "rollup_hour":
                rollup_hour(store, r.hour, p.cfg, run_id)
            elif r.op == "rollup_stream":
                rollup_stream(store, r.day, r.kind, p.cfg, run_id)
            elif r.op == "rollup_processed":
                rollup_processed(store, r.day, p.cfg, run_id)
            else:
                rollup_day(store, r.day, p.cfg, run_id)
        except (RollupError, StorageError, ValueError) as exc:
            res.rollup_failures.append(str(exc))
            audit.record("rollup_failed", r, detail=str(exc))
            log.warning("rollup failed, data kept: %s", exc)
            continue
        res.rollups_verified += 1
        audit.record("rollup_verified", r)


def _new_hour_markers(store: ObjectStore, p: Plan) -> list[Action]:
    """Markers written by this run's phase 1 for days whose tiers expire in this run."""
    planned = {a.key for a in p if a.op in ("delete", "exempt")}
    return [a for a in expired_markers(store, p.cfg, p.as_of) if a.key not in planned]


def _run_phase2(store: ObjectStore, p: Plan, audit: _Audit, res: RetentionResult) -> None:
    """Delete what verified rollups cover, write-ahead: each batch's ``delete_intent`` rows (warehouse
    and an ``.intent-N.jsonl`` audit object) are written before its first delete, its outcomes
    (``deleted``/``delete_failed``/...) after the last; a run killed in between is completed by the
    next run's :func:`reconcile_intents`."""
    todo: list[tuple[Action, str | None]] = []
    for a, sha in _verified_deletes(store, p, audit, res):
        if p.cfg.max_deletes is not None and len(todo) >= p.cfg.max_deletes:
            break
        todo.append((a, sha))
    for i in range(0, len(todo), audit.batch):
        batch = todo[i:i + audit.batch]
        ikey = audit.intent("delete_intent", [a for a, _ in batch])
        start, n = len(audit.rows), 0
        try:
            for a, sha in batch:
                n += 1
                try:
                    store.delete(a.key)
                except StorageError as exc:
                    action = "refused_locked" if _is_lock_error(exc) else "delete_failed"
                    audit.record(action, a, sha256=sha, detail=str(exc)[:500])
                    _tally(res, action, a)
                    continue
                res.bytes_freed += a.size
                audit.record("deleted", a, sha256=sha)
                _tally(res, "deleted", a)
        finally:  # an exception (not a kill -9) still closes the intent exactly
            for a, _sha in batch[n:]:
                audit.record("delete_not_done", a, detail="run stopped before this delete")
            audit.done(ikey, audit.rows[start:])


def reconcile_intents(store: ObjectStore, audit: _Audit, prefix: str = "audit/intents/") -> int:
    """Complete the audit of runs killed between a write-ahead intent and its outcome: every item
    of an intent object without its ``.done-`` twin is checked now and recorded (``deleted`` when
    the object is gone, ``delete_not_done`` when it is still there, to be planned again).
    Returns the number of intents closed."""
    objs = {o.key for o in store.list(prefix)}
    orphans = sorted(k for k in objs if ".intent-" in k and k.endswith(".jsonl")
                     and k.replace(".intent-", ".done-") not in objs)
    closed = 0
    done_before = _completed_in_db(audit.engine, {_run_of(k) for k in orphans}) if orphans else set()
    for key in orphans:
        try:
            rows = [json.loads(x) for x in store.get(key).splitlines() if x.strip()]
        except (StorageError, ValueError) as exc:
            log.warning("cannot read write-ahead intent %s: %s", key, exc)
            continue
        start = len(audit.rows)
        for r in rows:
            if (str(r.get("run_id")), r.get("key")) in done_before:
                continue  # its outcome reached the warehouse before the kill
            a = Action(op="delete", key=r["key"], kind=r.get("kind", ""), tier=r.get("tier", ""),
                       policy=r.get("policy", ""), size=int(r.get("size") or 0), etag=r.get("etag") or "")
            how = f"interrupted run {r.get('run_id')} ({key})"
            if r.get("action") == "delete_intent":
                gone = store.head(r["key"]) is None
                audit.record("deleted" if gone else "delete_not_done", a,
                             detail=("confirmed absent after " if gone else "still present after ") + how)
            elif r.get("action") == "forget_intent":
                audit.record("forget_checked", a, detail=f"erasure intent of {how}; the rerun re-checks it")
        audit.done(key, audit.rows[start:])
        closed += 1
    return closed


_OUTCOMES = ("deleted", "delete_failed", "refused_locked", "delete_not_done", "forgot_user", "forget_failed")


def _run_of(intent_key: str) -> str:
    """The (sanitised) run id in an intent object's name."""
    return intent_key.rsplit("/", 1)[-1].split(".intent-")[0].rsplit(".", 1)[0]


def _completed_in_db(engine: sa.Engine | None, runs: set[str]) -> set[tuple[str, str]]:
    """(run_id, key) of outcomes of ``runs`` already in the warehouse audit (none without one)."""
    if engine is None or not sa.inspect(engine).has_table("retention_audit"):
        return set()
    t = retention_audit
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.run_id, t.c.key).where(t.c.action.in_(_OUTCOMES)))
        return {(r, k) for r, k in rows if re.sub(r"[^A-Za-z0-9_.+=-]", "_", r) in runs}


def _verified_deletes(store: ObjectStore, p: Plan, audit: _Audit, res: RetentionResult
                      ) -> Iterator[tuple[Action, str | None]]:
    """The planned deletes whose covering marker is verified and whose object is unchanged."""
    markers: dict[str, dict[str, dict[str, Any]] | None] = {}
    for a in p.deletes + _new_hour_markers(store, p):
        sha = None
        if a.requires:
            if a.requires not in markers:
                try:
                    m = json.loads(store.get(a.requires))
                    markers[a.requires] = {c["key"]: c for c in m.get("covers", [])} if m.get("verified") else None
                except (StorageError, ValueError):
                    markers[a.requires] = None
            covers = markers[a.requires]
            if covers is None or a.key not in covers:
                audit.record("skipped_unverified", a, detail=f"no verified rollup {a.requires}")
                _tally(res, "skipped_unverified", a)
                continue
            c = covers[a.key]
            now = store.head(a.key)
            if now is None:
                continue
            if (now.size, now.etag) != (c["size"], c["etag"]):
                audit.record("skipped_changed", a, detail="object changed since its rollup was verified")
                _tally(res, "skipped_changed", a)
                continue
            sha = c.get("sha256") or None
        yield a, sha


def apply(store: ObjectStore, engine: sa.Engine | None, p: Plan, run_id: str, dry_run: bool = False,
          phases: tuple[str, ...] = ("rollup", "delete")) -> RetentionResult:
    """Execute a plan: phase 1 (rollup + verify + marker), then phase 2 (delete what is verified).

    ``dry_run`` writes nothing but the audit (``would_delete`` / ``exempt_legal_hold`` rows).
    ``phases`` lets a caller run phase 1 only (phase 2 of a later run completes the job).
    """
    res = RetentionResult(run_id=run_id, as_of=p.as_of, dry_run=dry_run)
    audit = _Audit(store, engine, run_id, p.as_of, p.cfg)
    try:
        for a in p:
            if a.op == "exempt":
                action = "exempt_legal_hold" if a.hold else "skipped_unverified"
                audit.record(action, a)
                _tally(res, action, a)
        if dry_run:
            for a in p.deletes:
                audit.record("would_delete", a, detail=f"needs {a.requires}" if a.requires else None)
                _tally(res, "would_delete", a)
                res.bytes_freed += a.size
        else:
            reconcile_intents(store, audit)
            if "rollup" in phases:
                _run_phase1(store, p, run_id, audit, res)
            if "delete" in phases:
                _run_phase2(store, p, audit, res)
    finally:
        audit.close()
        res.audit_key = audit.key
    res.lines = format_plan(p, res).splitlines()
    return res


def run_retention(store: ObjectStore, engine: sa.Engine | None, as_of: date, cfg: RetentionConfig | Config | dict[str, Any] | None, run_id: str,
                  dry_run: bool = False) -> RetentionResult:
    """What ``llmmon retention --as-of DATE [--dry-run]`` and the DAG task call."""
    rcfg = retention_config(cfg)
    if engine is not None:
        create_tables(engine)
    p = plan(store, as_of, rcfg)
    res = apply(store, engine, p, run_id, dry_run=dry_run)
    for line in res.lines:
        log.info("%s", line)
    return res


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_plan(p: Plan, res: RetentionResult | None = None) -> str:
    """Human-readable plan: every object that would be deleted (or is held), then totals."""
    lines = [f"retention plan as of {p.as_of.isoformat()}"
             + (f" (run {res.run_id}{', DRY RUN' if res.dry_run else ''})" if res else "")]
    for a in p:
        if a.op == "delete":
            lines.append(f"  DELETE  {a.key}  {_human(a.size)}  tier={a.tier} policy={a.policy}"
                         + (f" after {a.requires}" if a.requires else ""))
        elif a.op == "exempt":
            lines.append(f"  KEEP    {a.key}  {_human(a.size)}  "
                         + (f"legal hold {a.hold}" if a.hold else a.detail))
        else:
            lines.append(f"  ROLLUP  {a.key}")
    tot: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for a in p.deletes:
        t = tot[(a.tier, a.kind)]
        t[0] += 1
        t[1] += a.size
    lines.append("totals (would delete):")
    for (tier, kind), (n, b) in sorted(tot.items()):
        lines.append(f"  {tier:<11} {kind:<18} {n:>7} objects  {_human(b)}")
    lines.append(f"  {'all':<30} {sum(v[0] for v in tot.values()):>7} objects  "
                 f"{_human(sum(v[1] for v in tot.values()))}")
    held = [a for a in p if a.op == "exempt" and a.hold]
    if held:
        lines.append(f"  held by legal hold: {len(held)} objects {_human(sum(a.size for a in held))}")
    if res is not None:
        lines.append("outcome: " + (", ".join(f"{k}={v}" for k, v in sorted(res.counts.items()))
                                     or "nothing to do")
                     + f"; bytes {'that would be ' if res.dry_run else ''}freed={res.bytes_freed}")
        for f in res.rollup_failures:
            lines.append(f"  rollup failed (data kept): {f}")
    return "\n".join(lines)
