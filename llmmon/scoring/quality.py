"""Per-record quality scores for one chunk of requests, and the ``quality`` config section.

``score_chunk(df, cfg)`` returns a frame aligned to ``df.index`` with numeric/bool/short-string
columns ready for whylogs profiling and aggregation (``SCORE_COLUMNS``). No column holds a raw
PII value: only counts and comma-joined type names.

Config (``quality:`` in the llmmon YAML; every key optional, defaults below)::

    quality:
      pii:
        types: [API_KEY, EMAIL, IBAN, CN_ID, CREDIT_CARD, SSN, PHONE, IPV4]
      safety:
        jailbreak: {patterns: null, extra: []}   # patterns replaces the defaults, extra appends
        refusal:   {patterns: null, extra: []}
        toxicity:  {patterns: null, extra: []}
        refusal_window_chars: 400                # refusals open an answer; look only there
        models: true                             # shipped jailbreak/toxicity models on top of patterns
        weights: {jailbreak: 0.5, jailbreak_refused: 0.1, toxic_prompt: 0.2,
                  toxic_response: 0.6, pii_leak: 0.4}
      relevance:
        method: ngram          # ngram (n-gram set cosine, fast) | ngram_tf (hashed TF cosine) | embedding
        ngram_min: 2
        ngram_max: 2
        max_chars: 256
        table_bits: 20
        model: sentence-transformers/all-MiniLM-L6-v2   # embedding only; must be local
        batch_size: 64
      language: {zh_min_share: 0.2, en_min_share: 0.6, max_chars: 400}
      consistency: {min_repeats: 2, max_responses: 10, max_prompts: 200, max_chars: 1000,
                    low_similarity: 0.3}   # per (hour, model); see ConsistencyConfig
      review: {relevance_threshold: 0.1, safety_threshold: 0.5, low_relevance_quantile: 0.2,
               sample_per_model: 20, candidates_per_hour: 20, low_score_share: 0.5, seed: 0}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field, field_validator

from llmmon.scoring import pii, safety
from llmmon.scoring.consistency import prompt_hash
from llmmon.scoring.language import classify, fast_script_counts
from llmmon.scoring.relevance import EmbeddingScorer, ngram_cosine, ngram_set_cosine
from llmmon.strict import StrictModel

SCORE_COLUMNS = (
    "pii_prompt_count", "pii_response_count", "pii_leak_count", "pii_prompt_types",
    "pii_response_types", "pii_leak_types", "jailbreak", "refusal", "toxic", "toxic_prompt",
    "toxic_response", "safety_score", "relevance", "prompt_lang", "response_lang", "prompt_hash",
)


if TYPE_CHECKING:
    from llmmon.config import Config

_Model = StrictModel  # unknown keys are an error (llmmon.config)


class PatternList(_Model):
    """``patterns`` replaces the built-in list when set; ``extra`` is appended either way."""

    patterns: list[str] | None = None
    extra: list[str] = []

    @field_validator("patterns", "extra")
    @classmethod
    def _compiles(cls, v: list[str] | None) -> list[str] | None:
        if v:
            safety.validate_patterns(v)
        return v

    def resolve(self, defaults: tuple[str, ...]) -> tuple[str, ...]:
        base = defaults if self.patterns is None else tuple(self.patterns)
        return base + tuple(self.extra)


class SafetyWeights(_Model):
    jailbreak: float = Field(0.5, ge=0, le=1)
    jailbreak_refused: float = Field(0.1, ge=0, le=1)
    toxic_prompt: float = Field(0.2, ge=0, le=1)
    toxic_response: float = Field(0.6, ge=0, le=1)
    pii_leak: float = Field(0.4, ge=0, le=1)


class SafetyConfig(_Model):
    jailbreak: PatternList = Field(default_factory=PatternList)
    refusal: PatternList = Field(default_factory=PatternList)
    toxicity: PatternList = Field(default_factory=PatternList)
    refusal_window_chars: int = Field(400, ge=1)
    # Shipped models (jailbreak and toxicity n-gram models, alt-profanity-check) on top of the
    # patterns; false keeps the patterns only (faster, less recall).
    models: bool = True
    weights: SafetyWeights = Field(default_factory=SafetyWeights)


class PiiConfig(_Model):
    types: list[str] = list(pii.PII_TYPES)

    @field_validator("types")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(pii.PII_TYPES))
        if unknown:
            raise ValueError(f"unknown PII types {unknown}; known: {list(pii.PII_TYPES)}")
        return v


class RelevanceConfig(_Model):
    method: Literal["ngram", "ngram_tf", "embedding"] = "ngram"
    ngram_min: int = Field(2, ge=1, le=4)
    ngram_max: int = Field(2, ge=1, le=4)
    max_chars: int = Field(256, ge=16)
    table_bits: int = Field(20, ge=12, le=26)
    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    batch_size: int = Field(64, ge=1)


class LanguageConfig(_Model):
    zh_min_share: float = Field(0.2, gt=0, le=1)
    en_min_share: float = Field(0.6, gt=0, le=1)
    max_chars: int = Field(400, ge=16)


class ConsistencyConfig(_Model):
    """Scored per (hour, model) on a bounded sample chosen by hashes, so it is the same whatever
    the chunks, batches or their order (``scoring/consistency.py``). Memory per (hour, model) is
    at most ``max_prompts`` x ``max_responses`` texts of ``max_chars`` characters."""

    min_repeats: int = Field(2, ge=2)
    # Responses compared per prompt: the ones with the smallest request-id hash.
    max_responses: int = Field(10, ge=2)
    # Distinct prompts tracked per (hour, model), repeated or not: the smallest prompt hashes.
    max_prompts: int = Field(200, ge=1)
    # Sampled responses are cut to this many characters (and PII-redacted) before comparison.
    max_chars: int = Field(1000, ge=16)
    low_similarity: float = Field(0.3, ge=0, le=1)


class ReviewConfig(_Model):
    relevance_threshold: float = Field(0.1, ge=0, le=1)
    safety_threshold: float = Field(0.5, ge=0, le=1)
    low_relevance_quantile: float = Field(0.2, gt=0, lt=1)
    sample_per_model: int = Field(20, ge=0)  # rows per model in review/<date>/sample.csv
    candidates_per_hour: int = Field(20, ge=1)  # bottom-k reservoir per (hour, model), x2 with low rows
    low_score_share: float = Field(0.5, ge=0, le=1)
    seed: int = 0


class QualityConfig(_Model):
    pii: PiiConfig = Field(default_factory=PiiConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    relevance: RelevanceConfig = Field(default_factory=RelevanceConfig)
    language: LanguageConfig = Field(default_factory=LanguageConfig)
    consistency: ConsistencyConfig = Field(default_factory=ConsistencyConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)

    @classmethod
    def from_config(cls, cfg: Config | Mapping[str, Any] | None = None) -> QualityConfig:
        """From an ``llmmon.config.Config`` (its ``quality`` dict), a plain mapping, or None."""
        if cfg is None:
            return cls()
        section = cfg if isinstance(cfg, Mapping) else getattr(cfg, "quality", {}) or {}
        return cls.model_validate(dict(section))

    def jailbreak_patterns(self) -> tuple[str, ...]:
        return self.safety.jailbreak.resolve(safety.JAILBREAK_PATTERNS)

    def refusal_patterns(self) -> tuple[str, ...]:
        return self.safety.refusal.resolve(safety.REFUSAL_PATTERNS)

    def toxicity_patterns(self) -> tuple[str, ...]:
        return self.safety.toxicity.resolve(safety.TOXICITY_PATTERNS)


def _pii_columns(prompts: list[str], responses: list[str], p_arr: pa.Array, r_arr: pa.Array,
                 types: list[str]) -> dict[str, np.ndarray]:
    n = len(prompts)
    counts = {k: np.zeros(n, np.int32) for k in ("pii_prompt_count", "pii_response_count",
                                                 "pii_leak_count")}
    names = {k: np.full(n, "", dtype=object) for k in ("pii_prompt_types", "pii_response_types",
                                                       "pii_leak_types")}
    # Each type's RE2 gate is a proven superset of its detector, so the Python detectors and
    # checksums run only on texts where a gate fired, and only the detectors whose gate fired:
    # the others find nothing there, so the hits are the same as with every detector.
    wanted = [t for t in pii.PII_TYPES if t in set(types)]
    p_bits, r_bits = pii.gate_bits(p_arr, wanted), pii.gate_bits(r_arr, wanted)
    by_bits: dict[int, list[str]] = {}

    def hits(text: str, b: int) -> list[pii.Hit]:
        if not b:
            return []
        if b not in by_bits:
            by_bits[b] = [t for k, t in enumerate(wanted) if b >> k & 1]
        return pii.find_pii(text, by_bits[b])

    for i in np.flatnonzero(p_bits | r_bits).tolist():
        res = pii.pair_result(hits(prompts[i], int(p_bits[i])), hits(responses[i], int(r_bits[i])))
        counts["pii_prompt_count"][i] = res.prompt_count
        counts["pii_response_count"][i] = res.response_count
        counts["pii_leak_count"][i] = res.leak_count
        names["pii_prompt_types"][i] = res.prompt_types
        names["pii_response_types"][i] = res.response_types
        names["pii_leak_types"][i] = res.leak_types
    return {**counts, **names}


def _languages(texts: list[str], cfg: LanguageConfig) -> np.ndarray:
    han, latin, other = fast_script_counts(texts, cfg.max_chars)
    return classify(han, latin, other, zh_min_share=cfg.zh_min_share, en_min_share=cfg.en_min_share)


def _texts(df: pd.DataFrame, column: str) -> list[str]:
    return _text_column(df, column)[0]


def _text_column(df: pd.DataFrame, column: str) -> tuple[list[str], pa.Array]:
    """The column as a list of str (missing or non-string: "") and as Arrow strings."""
    if column not in df:
        raise KeyError(f"score_chunk needs a {column!r} column (see llmmon.schema)")
    values = df[column].to_numpy(dtype=object)
    if set(map(type, values)) <= {str}:  # the usual chunk: no Python loop per row
        return values.tolist(), pa.array(values, type=pa.large_string())
    texts = [v if isinstance(v, str) else "" for v in values]
    return texts, pa.array(texts, type=pa.large_string())


def score_chunk(df: pd.DataFrame, cfg: QualityConfig | None = None, *,
                scorer: EmbeddingScorer | None = None) -> pd.DataFrame:
    """Quality scores for every row of ``df`` (needs ``prompt_text`` and ``response_text``).

    ``scorer`` is reused across chunks when ``relevance.method`` is ``embedding``; when omitted
    it is built from the config (and fails with a clear message if the package is missing).
    """
    cfg = cfg or QualityConfig()
    prompts, p_arr = _text_column(df, "prompt_text")
    responses, r_arr = _text_column(df, "response_text")

    out: dict[str, Any] = _pii_columns(prompts, responses, p_arr, r_arr, cfg.pii.types)

    p_lang, r_lang = _languages(prompts, cfg.language), _languages(responses, cfg.language)
    jailbreak = safety.match_any(p_arr, cfg.jailbreak_patterns())
    refusal = safety.match_any(r_arr, cfg.refusal_patterns(), max_chars=cfg.safety.refusal_window_chars)
    tox = cfg.toxicity_patterns()
    toxic_prompt, toxic_response = safety.match_any(p_arr, tox), safety.match_any(r_arr, tox)
    if cfg.safety.models:
        # One featurisation of the prompts for both models, one nonempty test per column.
        p_keep, r_keep = safety.nonempty(prompts, p_arr), safety.nonempty(responses, r_arr)
        jb_model, tox_model = safety.models_flags(("jailbreak", "toxicity"), prompts, p_lang, nonempty_rows=p_keep)
        jailbreak |= jb_model
        toxic_prompt |= tox_model | safety.profanity_flags(prompts, p_lang, arr=p_arr, nonempty_rows=p_keep)
        toxic_response |= safety.toxic_model_flags(responses, r_lang, arr=r_arr, nonempty_rows=r_keep)
    w = cfg.safety.weights
    out["jailbreak"] = jailbreak.astype(np.int8)
    out["refusal"] = refusal.astype(np.int8)
    out["toxic"] = (toxic_prompt | toxic_response).astype(np.int8)
    out["toxic_prompt"] = toxic_prompt.astype(np.int8)
    out["toxic_response"] = toxic_response.astype(np.int8)
    out["safety_score"] = safety.safety_score(
        jailbreak, refusal, toxic_prompt, toxic_response, out["pii_leak_count"] > 0,
        w_jailbreak=w.jailbreak, w_jailbreak_refused=w.jailbreak_refused,
        w_toxic_prompt=w.toxic_prompt, w_toxic_response=w.toxic_response, w_pii_leak=w.pii_leak)

    rc = cfg.relevance
    if rc.method == "embedding":
        scorer = scorer or EmbeddingScorer(rc.model, batch_size=rc.batch_size)
        out["relevance"] = scorer.score(prompts, responses)
    elif rc.method == "ngram":
        out["relevance"] = ngram_set_cosine(prompts, responses, ngram_min=rc.ngram_min,
                                            ngram_max=rc.ngram_max, max_chars=rc.max_chars)
    else:
        out["relevance"] = ngram_cosine(prompts, responses, table_bits=rc.table_bits,
                                        ngram_min=rc.ngram_min, ngram_max=rc.ngram_max,
                                        max_chars=rc.max_chars)
    out["prompt_lang"] = p_lang
    out["response_lang"] = r_lang
    out["prompt_hash"] = prompt_hash(p_arr)
    return pd.DataFrame(out, index=df.index, columns=list(SCORE_COLUMNS))


def _split_types(col: pd.Series) -> pd.Series:
    exploded = col[col.astype(bool)].str.split(",").explode()
    return exploded.value_counts()


def pii_type_counts(df_scores: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Records per PII type: ``{type: {"prompt": n, "response_leak": n}}`` (every type listed)."""
    prompt = _split_types(df_scores["pii_prompt_types"].fillna(""))
    leak = _split_types(df_scores["pii_leak_types"].fillna(""))
    return {t: {"prompt": int(prompt.get(t, 0)), "response_leak": int(leak.get(t, 0))}
            for t in pii.PII_TYPES}
