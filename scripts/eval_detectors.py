"""Precision and recall of the quality detectors on held-out test splits (``make eval-detectors``).

    .venv/bin/python scripts/eval_detectors.py [--mirror /work/.mirror] [--limit N]

Every text goes through ``llmmon.scoring.scan.scan_texts``, the code behind ``llmmon scan``,
which runs the pipeline's chunk scorer. Corpora (see ``docs/detectors.md``):

- jailbreak / toxicity / refusal: the *test* splits of ``scripts/detector_corpora.py`` (public
  GitHub snapshots; the models never saw them, thresholds were set on dev);
- PII: texts built from Faker's locale providers (a library we did not write: its card, IBAN,
  resident-ID, SSN, phone and e-mail generators) in English and Chinese sentences, with
  look-alike negatives (ISBNs, EANs, UUIDs, versions, prices, order numbers), seed fixed.

Also prints texts/s for each detector alone and rows/s of the whole chunk scorer. Not part of
``make test``; needs the corpora snapshots (``--mirror``) and ``faker``.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import detector_corpora as dc  # noqa: E402

from llmmon.scoring import pii, safety  # noqa: E402
from llmmon.scoring.quality import QualityConfig  # noqa: E402
from llmmon.scoring.scan import scan_texts  # noqa: E402


def pr(pred: np.ndarray, y: np.ndarray) -> tuple[float, float, int, int]:
    tp = int((pred & y).sum())
    return tp / max(1, int(pred.sum())), tp / max(1, int(y.sum())), int(y.sum()), int((~y).sum())


def line(signal: str, corpus: str, p: float, r: float, pos: int, neg: int, target: str = "") -> str:
    return f"{signal:10s} {corpus:52s} P={p:.3f} R={r:.3f}  pos={pos:<5d} neg={neg:<5d} {target}"


# ---- safety signals -------------------------------------------------------------------------

def _flags(rows: list[dc.Row], role: str, key: str, cfg: QualityConfig) -> np.ndarray:
    res = scan_texts([(r.text, role) for r in rows], cfg)
    return np.array([bool(x[key]) for x in res])


def eval_jailbreak(mirror: Path, cfg: QualityConfig) -> list[str]:
    import train_detectors as td

    rows = [r for r in td.jailbreak_training_rows(mirror) if r.split == "test"]
    pred = _flags(rows, "prompt", "jailbreak", cfg)
    y = np.array([r.label == 1 for r in rows])
    src = np.array([r.source for r in rows])
    lang = np.array([r.lang for r in rows])
    regular_en = np.isin(src, ["awesome_prompts", "alpaca_seed", "gptfuzz_questions"])
    regular_zh = np.isin(src, ["awesome_prompts_zh", "jailbench_questions"])
    groups = {
        "en templates (GPTFuzz, DAN) vs regular prompts": np.isin(src, ["gptfuzz_templates", "dan_readme"]) | regular_en,
        "en injections vs benign (deepset holdout)": src == "deepset",
        "zh role-play jailbreaks (JailBench) vs regular": (src == "jailbench") | regular_zh,
        "en all (+ tweets as negatives)": lang == "en",
        "zh all (+ COLD comments as negatives)": lang == "zh",
    }
    out = [line("jailbreak", k, *pr(pred[m], y[m]), "target R>=0.7 @ P>=0.95") for k, m in groups.items()]
    pat = safety.match_any([r.text for r in rows], cfg.jailbreak_patterns())
    m = groups["en templates (GPTFuzz, DAN) vs regular prompts"]
    out.append(line("jailbreak", "  patterns only: en templates vs regular", *pr(pat[m], y[m])))
    return out


def eval_toxicity(mirror: Path, cfg: QualityConfig) -> list[str]:
    rows = [r for r in dc.toxicity_rows(mirror) if r.split == "test"]
    pred = _flags(rows, "prompt", "toxic", cfg)
    y = np.array([r.label == 1 for r in rows])
    src = np.array([r.source for r in rows])
    out = [line("toxic", "en TweetEval offensive (OLID) test", *pr(pred[src == "tweeteval_offensive"],
                                                                   y[src == "tweeteval_offensive"]), "target R>=0.75 @ P>=0.95"),
           line("toxic", "en TweetEval hate (HatEval) test", *pr(pred[src == "tweeteval_hate"], y[src == "tweeteval_hate"]),
                "target R>=0.75 @ P>=0.95"),
           line("toxic", "zh COLDataset dev (our test half)", *pr(pred[src == "cold"], y[src == "cold"]),
                "target R>=0.5 @ P>=0.8")]
    pat = safety.match_any([r.text for r in rows], cfg.toxicity_patterns())
    for s, name in (("tweeteval_offensive", "en offensive"), ("cold", "zh COLD")):
        out.append(line("toxic", f"  patterns only: {name}", *pr(pat[src == s], y[src == s])))
    return out


def eval_refusal(mirror: Path, cfg: QualityConfig) -> list[str]:
    import csv
    import io

    git_dir = mirror / "sherdencooper+GPTFuzz" / "repo"
    raw = subprocess.run(["git", "-C", str(git_dir), "show", "HEAD:datasets/responses_labeled/evaluate.csv"],
                         capture_output=True, check=True).stdout.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(raw)))
    # GPTFuzz labels whether a jailbreak worked (1) or not (0): a proxy for refusal, not the same.
    pred = np.array([bool(x["refusal"]) for x in scan_texts([(r["Response"], "response") for r in rows], cfg)])
    y = np.array([r["label"] == "0" for r in rows])
    out = [line("refusal", "GPTFuzz evaluate.csv: not-jailbroken as refusal (proxy)", *pr(pred, y),
                "target R>=0.85 @ P>=0.95")]
    sys.path.insert(0, str(ROOT))
    from tests.scoring.conftest import load

    local = load("refusal")
    pred = np.array([bool(x["refusal"]) for x in scan_texts([(r["text"], "response") for r in local], cfg)])
    out.append(line("refusal", "tests/scoring/corpora/refusal.jsonl (hand-labelled)", *pr(pred, np.array(
        [bool(r["label"]) for r in local]))))
    return out


# ---- PII --------------------------------------------------------------------------------------

EN_T = ["Please use {v} for this.", "My details: {v}. Thanks!", "Can you check {v} for me?", "{v}", "ref: {v}\n"]
ZH_T = ["请使用{v}办理。", "我的信息是：{v}，谢谢！", "帮我查一下 {v} 好吗？", "{v}"]


def _spaced(s: str, sizes: list[int], sep: str) -> str:
    out, i = [], 0
    for n in sizes:
        out.append(s[i:i + n])
        i += n
    if i < len(s):
        out.append(s[i:])
    return sep.join(p for p in out if p)


def pii_rows(n_per_type: int, seed: int) -> list[tuple[str, dict[str, int]]]:
    from faker import Faker

    rnd = random.Random(seed)
    fk = {loc: Faker(loc) for loc in ("en_US", "zh_CN", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT",
                                      "pl_PL", "fi_FI", "no_NO", "da_DK", "cs_CZ", "en_IE", "tr_TR", "ro_RO", "pt_PT")}
    for i, f in enumerate(fk.values()):
        f.seed_instance(seed + i)
    us, zh = fk["en_US"], fk["zh_CN"]
    card_types = ["amex", "diners", "discover", "jcb15", "jcb16", "maestro", "mastercard", "visa13", "visa16", "visa19"]

    def card() -> str:
        v = us.credit_card_number(rnd.choice(card_types))
        style = rnd.random()
        if style < 0.3:
            return v
        sizes = [4, 6, 5] if len(v) == 15 else [4, 4, 4, 4, 3]
        return _spaced(v, sizes, rnd.choice([" ", "-", "  "]))

    def cn_id() -> str:
        v = zh.ssn()
        return v if rnd.random() < 0.5 else _spaced(v, rnd.choice([[6, 8, 4], [3, 3, 4, 4, 4]]), rnd.choice([" ", "-"]))

    def email() -> str:
        v = rnd.choice([us, zh]).email()
        r = rnd.random()
        if r < 0.15:
            user, host = v.split("@")
            return f"{user} [at] {host.replace('.', ' [dot] ')}"
        if r < 0.25:
            user, host = v.split("@")
            return f"{user}(at){host.replace('.', '(dot)')}"
        return v

    def iban() -> str:
        loc = rnd.choice([k for k in fk if k not in ("en_US", "zh_CN")])
        v = fk[loc].iban()
        r = rnd.random()
        return v if r < 0.4 else _spaced(v, [4] * 9, " " if r < 0.8 else "-")

    def ssn() -> str:
        v = us.ssn()
        r = rnd.random()
        if r < 0.5:
            return v
        if r < 0.75:
            return v.replace("-", rnd.choice([" ", "."]))
        return "SSN " + v.replace("-", "")

    def phone() -> str:
        f = rnd.choice([us, us, zh, zh, fk["en_GB"], fk["de_DE"], fk["fr_FR"]])
        return f.phone_number()

    gens = {"CREDIT_CARD": card, "CN_ID": cn_id, "EMAIL": email, "IBAN": iban, "SSN": ssn, "PHONE": phone,
            "IPV4": lambda: us.ipv4_public()}
    rows: list[tuple[str, dict[str, int]]] = []
    for t, g in gens.items():
        for _ in range(n_per_type):
            tpl = rnd.choice(ZH_T if rnd.random() < 0.4 else EN_T)
            rows.append((tpl.format(v=g()), {t: 1}))
    negs = [lambda: f"ISBN {us.isbn13()}", lambda: f"EAN {us.ean13()}", lambda: f"id {us.uuid4()}",
            lambda: f"version {rnd.randint(1, 20)}.{rnd.randint(0, 99)}.{rnd.randint(0, 9999)}",
            lambda: f"Order #{us.numerify('##########')}", lambda: f"订单号{us.numerify('################')}",
            lambda: f"Total: ${rnd.randint(1, 99999):,}.{rnd.randint(0, 99):02d}", lambda: us.date_time().isoformat(),
            lambda: f"sha1 {us.sha1()}", lambda: us.sentence(), lambda: zh.sentence(),
            lambda: f"Invoice {us.bothify('INV-####-????')} due {us.date()}", lambda: f"π≈{rnd.random() * 10:.12f}",
            lambda: f"tracking {us.numerify('1Z###############')}"]
    for _ in range(n_per_type * 3):
        rows.append((rnd.choice(negs)(), {}))
    rnd.shuffle(rows)
    return rows


def eval_pii(cfg: QualityConfig, n_per_type: int) -> list[str]:
    rows = pii_rows(n_per_type, seed=14)
    res = scan_texts([(t, "prompt") for t, _ in rows], cfg)
    tp, fp, fn = Counter(), Counter(), Counter()
    for (_, exp), got in zip(rows, res, strict=True):
        g, e = Counter(got["pii"]), Counter(exp)
        for t in set(g) | set(e):
            tp[t] += min(g[t], e[t])
            fp[t] += max(0, g[t] - e[t])
            fn[t] += max(0, e[t] - g[t])
    out = []
    for t in sorted(set(tp) | set(fn) | set(fp)):
        target = "target R>=0.8" if t == "PHONE" else "target R>=0.9 @ P>=0.95"
        out.append(f"{'pii':10s} {t + ' (Faker values, en+zh sentences)':52s} P={tp[t] / max(1, tp[t] + fp[t]):.3f} "
                   f"R={tp[t] / max(1, tp[t] + fn[t]):.3f}  pos={tp[t] + fn[t]:<5d} fp={fp[t]:<5d} {target}")
    return out


# ---- speed ------------------------------------------------------------------------------------

def speed(texts: list[str], cfg: QualityConfig) -> list[str]:
    """texts/s of each detector alone on ``texts`` (best of 2 runs; the machine is shared)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from llmmon.scoring.quality import score_chunk

    langs = np.where([any("\u4e00" <= c <= "\u9fff" for c in t[:50]) for t in texts], "zh", "en")
    arr = pa.array(texts, type=pa.large_string())

    def pii_all() -> None:
        cand = pc.match_substring_regex(arr, pattern=pii.PREFILTER).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(cand):
            pii.find_pii(texts[i])

    runs = {
        "pii (prefilter + validators)": pii_all,
        "jailbreak patterns (RE2)": lambda: safety.match_any(arr, cfg.jailbreak_patterns()),
        "jailbreak model": lambda: safety.model_flags("jailbreak", texts, langs),
        "refusal patterns (RE2, 400 chars)": lambda: safety.match_any(arr, cfg.refusal_patterns(), max_chars=400),
        "toxicity patterns (RE2)": lambda: safety.match_any(arr, cfg.toxicity_patterns()),
        "toxicity model (n-gram)": lambda: safety.model_flags("toxicity", texts, langs),
        "toxicity alt-profanity-check (en)": lambda: safety.profanity_flags(texts, langs),
    }
    out = []
    for name, fn in runs.items():
        best = min(_timed(fn) for _ in range(2))
        out.append(f"speed      {name:40s} {len(texts) / best:>10,.0f} texts/s")
    df = pd.DataFrame({"prompt_text": texts, "response_text": texts[::-1]})
    for models in (False, True):
        c = cfg.model_copy(update={"safety": cfg.safety.model_copy(update={"models": models})})
        best = min(_timed(lambda c=c: score_chunk(df, c)) for _ in range(2))
        out.append(f"speed      score_chunk, models={models!s:5s}                 {len(df) / best:>10,.0f} rows/s")
    return out


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


SMOKE_SOURCES = {  # permissive licences only (docs/detectors.md); no tweets
    ("jailbreak", 1): ["jailbench", "gptfuzz_templates"], ("jailbreak", 0): ["awesome_prompts", "awesome_prompts_zh",
                                                                           "alpaca_seed"],
    ("toxic", 1): ["cold"], ("toxic", 0): ["cold"],
}


def write_smoke(mirror: Path, path: Path, per_cell: int = 12) -> None:
    """A small, fixed sample of the test splits for the unit-test smoke check."""
    import json

    import train_detectors as td

    rnd = random.Random(14)
    pools = {"jailbreak": [r for r in td.jailbreak_training_rows(mirror) if r.split == "test"],
             "toxic": [r for r in dc.toxicity_rows(mirror) if r.split == "test"]}
    out = []
    for (signal, label), sources in SMOKE_SOURCES.items():
        for src in sources:
            cand = [r for r in pools[signal] if r.source == src and r.label == label]
            k = per_cell * (2 if signal == "toxic" else 1)
            for r in rnd.sample(cand, min(k, len(cand))):
                out.append({"signal": signal, "label": label, "role": "prompt", "lang": r.lang, "source": r.source,
                            "text": r.text})
    path.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in out), encoding="utf-8")
    print(f"wrote {len(out)} rows to {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, default=dc.DEFAULT_MIRROR)
    ap.add_argument("--pii-per-type", type=int, default=300)
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--write-smoke", type=Path, help="write the unit-test sample of the test splits and stop")
    args = ap.parse_args()
    if args.write_smoke:
        write_smoke(args.mirror, args.write_smoke)
        return 0
    cfg = QualityConfig()
    print(f"{'signal':10s} {'corpus (test split)':52s} precision / recall")
    for fn in (lambda: eval_pii(cfg, args.pii_per_type), lambda: eval_jailbreak(args.mirror, cfg),
               lambda: eval_refusal(args.mirror, cfg), lambda: eval_toxicity(args.mirror, cfg)):
        for ln in fn():
            print(ln, flush=True)
    if not args.no_speed:
        rows = [r.text for r in dc.toxicity_rows(args.mirror) if r.split == "test"]
        rows += [r.text for r in dc.jailbreak_rows(args.mirror) if r.split == "test"]
        rows += [t for t, _ in pii_rows(100, seed=1)]
        random.Random(0).shuffle(rows)
        for ln in speed(rows, cfg):
            print(ln, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
