"""Labelled corpora for training and evaluating the safety detectors (dev tool, not the package).

Every corpus is read from a local snapshot of a public GitHub repository (``git show`` on the
mirror folder given by ``--mirror`` or ``$LLMMON_CORPORA``), at the commit recorded below, so a
split is reproducible. Nothing here is downloaded at run time and nothing is vendored.

Splits are deterministic: a row goes to train / dev / test by a hash of its group key (the
template for JailBench, whose rows are templates x questions; the text otherwise). Official
splits are kept where a corpus has them (TweetEval; COLDataset train for training, its dev
split halved into our dev and test: its test split is reserved for the project's evaluation).

Reserved data is never read here: garak, verazuo/jailbreak_llms, XSTest, the Davidson tweets,
the COLDataset test split, and the tests of presidio, langkit, llm-guard, cn_pii_anonymization.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MIRROR = Path(os.environ.get("LLMMON_CORPORA", "/work/.mirror"))


@dataclass(frozen=True)
class Source:
    repo: str
    commit: str
    licence: str


SOURCES = {
    "gptfuzz": Source("sherdencooper/GPTFuzz", "1eddeb565740ae311b5f4950492b011a6f866fe7", "MIT"),
    "dan": Source("0xk1h0/ChatGPT_DAN", "dc614355a32b436ca8de1a0ced23beca7d30cc84", "none stated (read only)"),
    "deepset": Source("sinanw/llm-security-prompt-injection", "c8af0b015a9a4f3380f9e20214828c2dbeadc72c",
                      "Apache-2.0 (deepset/prompt-injections)"),
    "jailbench": Source("STAIR-BUPT/JailBench", "5f474072db5212602448c16558b6d449efbecd30", "MIT"),
    "awesome": Source("Beelzabi/awesome-chatgpt-prompts", "551c5b77340f58a1637b53ada2292d8c79692818", "CC0-1.0"),
    "awesome_zh": Source("PlexPt/awesome-chatgpt-prompts-zh", "367ed18b9c50b702d762c6fbc2885107141acb62", "MIT"),
    "alpaca": Source("tatsu-lab/stanford_alpaca", "761dc5bfbdeeffa89b8bff5d038781a4055f796a", "Apache-2.0"),
    "cold": Source("thu-coai/COLDataset", "a0c55a945497ab58e94aef491180e1cf88ffb864", "Apache-2.0"),
    "tweeteval": Source("cardiffnlp/tweeteval", "4fbd22cd78421f05b1ecdb4fc5725bc7a7bd8f66",
                        "TweetEval: no restriction; HatEval/OLID task licences, Twitter terms"),
}


@dataclass(frozen=True)
class Row:
    text: str
    label: int
    lang: str
    source: str
    split: str


def _show(mirror: Path, key: str, path: str) -> str:
    src = SOURCES[key]
    git_dir = mirror / src.repo.replace("/", "+") / "repo"
    out = subprocess.run(["git", "-C", str(git_dir), "show", f"{src.commit}:{path}"], capture_output=True,
                         check=False)
    if out.returncode != 0:  # the mirror may hold a newer snapshot only
        out = subprocess.run(["git", "-C", str(git_dir), "show", f"HEAD:{path}"], capture_output=True, check=True)
    return out.stdout.decode("utf-8-sig")


def split_of(key: str) -> str:
    """train (70%), dev (10%) or test (20%) by a stable hash of the group key."""
    h = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) % 10
    return "train" if h < 7 else "dev" if h < 8 else "test"


def _lang(text: str) -> str:
    han = len(re.findall(r"[\u4e00-\u9fff]", text))
    return "zh" if han >= max(2, 0.2 * len(text.replace(" ", ""))) else "en"


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _parquet_rows(mirror: Path, key: str, path: str) -> list[dict[str, object]]:
    import pyarrow.parquet as pq

    src = SOURCES[key]
    git_dir = mirror / src.repo.replace("/", "+") / "repo"
    raw = subprocess.run(["git", "-C", str(git_dir), "show", f"HEAD:{path}"], capture_output=True,
                         check=True).stdout
    return pq.read_table(io.BytesIO(raw)).to_pylist()


# ---- jailbreak ----------------------------------------------------------------------------

def _dan_prompts(readme: str) -> list[str]:
    """The prompt blocks of the DAN README (each inside <details>...</details>)."""
    out = []
    for block in re.findall(r"<details>(.*?)</details>", readme, flags=re.S):
        body = re.sub(r"<summary>.*?</summary>", "", block, flags=re.S).strip()
        body = re.sub(r"^```\w*|```$", "", body.strip()).strip()
        if len(body) > 300:
            out.append(body)
    return out


def jailbreak_rows(mirror: Path = DEFAULT_MIRROR) -> Iterator[Row]:
    """Jailbreak / prompt-injection prompts (label 1) against regular prompts (label 0)."""
    questions = [r["text"] for r in _csv(_show(mirror, "gptfuzz", "datasets/questions/question_list.csv"))]
    for i, r in enumerate(_csv(_show(mirror, "gptfuzz", "datasets/prompts/GPTFuzzer.csv"))):
        t = r["text"]
        filled = t.replace("[INSERT PROMPT HERE]", questions[i % len(questions)])
        yield Row(filled, 1, "en", "gptfuzz_templates", split_of(t))
    for q in questions:  # harmful questions, asked plainly: not a jailbreak
        yield Row(q, 0, "en", "gptfuzz_questions", split_of(q))
    for t in _dan_prompts(_show(mirror, "dan", "README.md")):
        yield Row(t, 1, _lang(t), "dan_readme", split_of(t))
    for path, official in (("data/raw/train-00000-of-00001-9564e8b05b4757ab.parquet", None),
                           ("data/raw/test-00000-of-00001-701d16158af87368.parquet", "test")):
        for r in _parquet_rows(mirror, "deepset", path):
            t = str(r["text"])
            # deepset's holdout stays a test set; its train split feeds our train/dev.
            sp = official or ("dev" if split_of(t) == "dev" else "train")
            yield Row(t, int(r["label"]), _lang(t), "deepset", sp)
    seeds = [r["question_zh"] for r in _csv(_show(mirror, "jailbench", "JailBench_seed.csv"))]
    for q in seeds:
        yield Row(q, 0, "zh", "jailbench_questions", split_of(q))
    suffixes = sorted(seeds, key=len, reverse=True)
    for r in _csv(_show(mirror, "jailbench", "JailBench.csv")):
        t = r["query"]
        template = next((t[: -len(q)] for q in suffixes if t.endswith(q)), t)
        yield Row(t, 1, "zh", "jailbench", split_of(template))
    for r in _csv(_show(mirror, "awesome", "prompts.csv")):
        # The list carries a few jailbreaks itself (DAN): those are labelled as what they are.
        jb = bool(re.search(r"\bDAN\b|do anything now|jailbr", r["act"] + " " + r["prompt"], flags=re.I))
        yield Row(r["prompt"], int(jb), "en", "awesome_jailbreak" if jb else "awesome_prompts", split_of(r["prompt"]))
    for name in ("prompts-zh.json", "prompts-zh-TW.json"):
        for r in json.loads(_show(mirror, "awesome_zh", name)):
            yield Row(r["prompt"], 0, "zh", "awesome_prompts_zh", split_of(r["prompt"]))
    for line in _show(mirror, "alpaca", "seed_tasks.jsonl").splitlines():
        r = json.loads(line)
        t = (r["instruction"] + "\n" + r["instances"][0]["input"]).strip()
        yield Row(t, 0, "en", "alpaca_seed", split_of(t))


# ---- toxicity -----------------------------------------------------------------------------

def toxicity_rows(mirror: Path = DEFAULT_MIRROR) -> Iterator[Row]:
    """Toxic (1) / not (0): TweetEval hate+offensive (English), COLDataset train/dev (Chinese)."""
    for task in ("offensive", "hate"):
        for ours, theirs in (("train", "train"), ("dev", "val"), ("test", "test")):
            texts = _show(mirror, "tweeteval", f"datasets/{task}/{theirs}_text.txt").splitlines()
            labels = _show(mirror, "tweeteval", f"datasets/{task}/{theirs}_labels.txt").split()
            for t, y in zip(texts, labels, strict=True):
                yield Row(t.strip(), int(y), "en", f"tweeteval_{task}", ours)
    for name in ("train", "dev"):  # test.csv is reserved
        for r in _csv(_show(mirror, "cold", f"COLDataset/{name}.csv")):
            t = r["TEXT"]
            sp = "train" if name == "train" else ("dev" if split_of(t) == "train" else "test")
            yield Row(t, int(r["label"]), "zh", "cold", sp)
