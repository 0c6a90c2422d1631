"""The layout rules of docs/architecture.md, checked: no import cycles among llmmon modules (imports
inside functions and under TYPE_CHECKING count), no core parameter typed ``Any``, no registries."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "llmmon"
CORE_NAMES = {"ctx", "cfg", "ds", "df", "view", "store", "engine", "state"}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(PKG.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def _edges(mods: dict[str, tuple[Path, bool]]) -> dict[str, set[str]]:
    def resolve(name: str, attr: str | None = None) -> str | None:
        if attr and f"{name}.{attr}" in mods:
            return f"{name}.{attr}"
        return name if name in mods else None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, (f, is_pkg) in mods.items():
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = m.split(".") if is_pkg else m.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [resolve(base, a.name) for a in node.names]
            else:
                continue
            edges[m].update(t for t in targets if t and t != m and not mods[t][1])
    return edges


def test_no_import_cycles():
    edges = _edges(_modules())
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycles.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def test_core_parameters_have_real_types():
    bad = []
    for f in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for a in node.args.args + node.args.kwonlyargs:
                    if a.arg in CORE_NAMES and (a.annotation is None or ast.unparse(a.annotation) == "Any"):
                        bad.append(f"{f.relative_to(PKG.parent)}:{node.lineno} {node.name}({a.arg})")
    assert not bad, f"{len(bad)} core parameters typed Any or untyped: " + ", ".join(bad[:20])


def test_no_registries_for_our_own_stages():
    text = "\n".join(f.read_text(encoding="utf-8") for f in PKG.rglob("*.py"))
    for name in ("register_scorer", "register_section", "register_window_metrics", "register_hour_state",
                 "EXTRA_COMMANDS", "EXTRA_METADATA", "HTML_BLOCKS"):
        assert name not in text, name


# The data flows store -> hourly (stage 1) -> daily (stage 2) -> reports (the daily job's last
# step): an earlier stage never imports a later one. daily -> reports is the daily job writing
# its report, so it is allowed.
LATER = {"store": {"hourly", "daily", "reports"}, "hourly": {"daily", "reports"}}


def test_stages_import_only_earlier_stages():
    """The tree reads in flow order: stage 1 never reaches into stage 2 or the report, and the
    store into neither, so a newcomer follows the data one way."""
    mods = _modules()
    back = []
    for a, targets in _edges(mods).items():
        for b in targets:
            sa, sb = a.split(".")[1], b.split(".")[1] if b.count(".") else ""
            if sb in LATER.get(sa, ()):
                back.append(f"{a} -> {b}")
    assert not back, back
