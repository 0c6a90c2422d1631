"""Safety signals: jailbreak/prompt-injection in prompts, refusals in responses, abusive language.

Each signal is a list of regular expressions (English and Chinese defaults below, replaceable
or extendable from the ``quality.safety`` config). A list is joined into one alternation and
run over a whole column at once with RE2 (pyarrow, linear time, releases the GIL); a pattern
RE2 cannot compile (look-arounds, back-references) makes that list fall back to Python's ``re``.
Matching is case-insensitive.

LangKit scores jailbreak/refusal by embedding similarity to known phrasings; phrase patterns
are cheaper, explainable in a report, and testable against a labelled corpus.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

JAILBREAK_PATTERNS: tuple[str, ...] = (
    # English: override the instructions.
    r"\b(?:ignore|disregard|forget|bypass)\b.{0,30}\b(?:previous|prior|above|earlier|"
    r"preceding|original|initial|system|all|your|any)\b.{0,20}\b(?:instructions?|prompts?|rules|"
    r"directions|guidelines|directives|programming|constraints|restrictions)",
    r"\bforget (?:everything|all) (?:you|that)\b",
    r"\b(?:new|updated|real) (?:instructions?|rules)\s*:",
    r"\b(?:override|bypass|disable|turn off|get around|circumvent|ignore)\s+(?:your|all (?:of )?your|"
    r"any of your|the AI's|the model's)\s+(?:\w+\s+)?(?:filters?|guardrails?|restrictions|guidelines|"
    r"policies|policy|protocols?|safeguards?|rules|programming|training)",
    r"\b(?:bypass|circumvent|get around|disable)\b.{0,15}\b(?:safety|content|ethical|moderation) "
    r"(?:filters?|guardrails?|restrictions|guidelines|policies|protocols?|safeguards?|checks?)",
    # Persona attacks.
    r"\b(?:DAN|STAN|AIM|DUDE)\b.{0,40}\b(?:mode|do anything now|prompt|jailbreak)|"
    r"\bdo anything now\b",
    r"\b(?:developer|dev|god|sudo|debug|unrestricted|jailbreak|jailbroken|evil|chaos) mode\b",
    r"\bjailbreak(?:ing|ed)?\b|\bjailbroken\b",
    r"\b(?:pretend|imagine|act|behave|roleplay|role-play)\b.{0,40}\b(?:without|with no|free of|"
    r"free from|no longer (?:bound|restricted)|not bound by)\b.{0,25}\b(?:restrictions|filters?|"
    r"rules|limits|limitations|guidelines|ethics|morals|censorship|policies)",
    r"\b(?:you are|you're|act as|become)\b.{0,20}\b(?:unfiltered|uncensored|unrestricted|"
    r"amoral|unethical|unbound)\b",
    r"\b(?:no|without any|without) (?:ethical|moral|content) (?:guidelines|restrictions|constraints|"
    r"limits|filters|boundaries)",
    # In-the-wild role-play jailbreaks ("simulate a chatbot named OPPO who... doesn't follow ANY
    # principles"): the persona is defined by the rules it drops.
    r"\b(?:never|not|won't|doesn't|does not|will not|cannot|can't|wouldn't|would never) (?:deny|refuse|reject|decline)\b"
    r".{0,30}\b(?:any|a|the|my|anything|every)\b.{0,12}\b(?:request|question|prompt|order|command|instruction)s?",
    r"\b(?:doesn't|does not|don't|do not|never|won't|will not|not) (?:have to )?(?:follow|obey|adhere to|care about|"
    r"abide by|respect)s? (?:any|ANY|OpenAI's|OpenAI’s) (?:of )?(?:the |its |their )?(?:rules|principles|guidelines|policies|"
    r"ethics|morals|laws|restrictions|content polic(?:y|ies))\b",
    r"\b(?:OpenAI|ChatGPT|Anthropic)(?:'s|’s)? (?:content |usage )?(?:policy|policies|guidelines|rules|restrictions|filters?)\b",
    r"\bsimulate\b.{0,60}\b(?:chatbot|AI|model|assistant|bot)\b.{0,10}\b(?:named|called)\b",
    r"\b(?:an?|the) (?:completely |totally |fully )?(?:unfiltered|uncensored|amoral|unrestricted|unhinged|unethical)\b.{0,30}"
    r"\b(?:AI|chatbot|model|assistant|bot|character|persona|version|entity|being)\b",
    r"\b(?:opposite|contrary) (?:of|from|to) (?:OpenAI|ChatGPT|your (?:programming|guidelines|rules))",
    r"\b(?:moral|ethical) (?:disclaimer|lecture|lecturing|policing)s?\b",
    r"\b(?:stay|remain|be) in character\b",
    # Prompt extraction.
    r"\b(?:repeat|print|output|show|reveal|write)\b.{0,40}\b(?:words|text|everything|instructions|prompt) above\b",
    r"\binitiali[sz]ation above\b",
    r"\b(?:reveal|show|print|output|repeat|display|tell me|give me|leak|dump|what (?:is|are|was|were))"
    r"\b.{0,25}\b(?:system prompt|system message|initial (?:instructions|prompt)|hidden (?:instructions|"
    r"prompt)|original (?:instructions|prompt)|instructions you were given|pre-?prompt)",
    # Injection markers copied from chat templates.
    r"<\|im_start\|>\s*system|\[/?INST\]|<<SYS>>|###\s*(?:system|instruction)\s*:",
    # Chinese.
    r"(?:忽略|无视|忽视|跳过|忘记|忘掉|不要理会|不用管|别管).{0,10}(?:之前|以上|上面|前面|先前|原来|原有|"
    r"所有|全部|你的|系统|一切).{0,8}(?:指令|指示|提示|规则|设定|限制|要求|规定|约束|准则)",
    r"(?:绕过|绕开|突破|规避|解除|取消|关闭|无视)(?:你的|掉)?(?:所有|一切|全部)?的?(?:安全|内容|道德|伦理)?"
    r"(?:限制|审查|过滤|防护|约束|护栏|准则)",
    r"开发者模式|越狱|上帝模式|无限制模式|DAN模式|邪恶模式",
    r"(?:扮演|假装|假设你是|你现在是|现在你是|你将成为|充当).{0,20}(?:没有|不受|不存在|无视|摆脱|无).{0,6}"
    r"(?:任何)?(?:限制|约束|审查|道德|规则|底线|过滤)",
    r"(?:泄露|透露|输出|显示|告诉我|打印|重复|说出|给我看).{0,10}(?:系统提示|系统指令|系统消息|初始指令|"
    r"隐藏指令|原始指令|预设指令|你的提示词|系统设定)",
    r"(?:系统提示词?|系统指令|初始指令|隐藏指令|原始指令|系统设定).{0,10}(?:输出|告诉|发给|显示|打印|泄露|透露)",
    r"(?:不要|不必|无需|不用)(?:再)?(?:遵守|遵循|理会|考虑).{0,8}(?:规则|限制|准则|指令|政策|道德|法律)",
    r"新的?指令\s*[:：]",
)

REFUSAL_PATTERNS: tuple[str, ...] = (
    r"\bI(?:'m| am) (?:sorry|afraid)\b.{0,40}\b(?:can't|cannot|can not|won't|will not|unable|not able|"
    r"not allowed|not permitted|must decline|don't|do not)\b",
    r"\bI (?:can't|cannot|can not|won't|will not|am unable to|'m unable to|am not able to|"
    r"'m not able to|am not allowed to|'m not allowed to|must decline to|must refuse to) "
    r"(?:provide|comply|fulfill|fulfil|support|share|give|create|generate|write|produce|engage|"
    r"participate|offer|disclose|reveal|answer|continue|go along|do that|do this|discuss)\b",
    # "help"/"assist" only with a complement: "I can't help but notice" is not a refusal.
    r"\bI (?:can't|cannot|can not|won't|will not|am unable to|'m unable to|am not able to|"
    r"'m not able to|am not allowed to|'m not allowed to) (?:help|assist)(?: you)? (?:with|in|on|to)\b",
    r"\bI(?:'m| am) unable to (?:help|assist|provide|comply|fulfill|share|create|generate|write|do|answer)\b",
    r"\bI (?:can't|cannot|won't) (?:do|help with) (?:that|this)\b",
    r"\bI must (?:respectfully )?(?:decline|refuse)\b",
    r"\bAs an AI(?: language model| assistant| model)?,? I (?:can't|cannot|can not|don't|do not|am not able|"
    r"'m not able|am unable|won't|will not|must not)\b",
    r"\b(?:this|that|your) request (?:violates|goes against|is against|conflicts with|falls outside)\b",
    r"\b(?:violates?|against|goes against) (?:my|our|the|OpenAI's|Anthropic's) (?:\w+ )?(?:guidelines|"
    r"policies|policy|terms|principles|rules)\b",
    r"\bI(?:'m| am) not (?:able|allowed|permitted) to (?:help|assist|provide|share|create|generate|"
    r"write|discuss|engage|do)\b",
    r"\bI(?:'m| am) not comfortable (?:providing|sharing|helping|writing|creating|discussing|"
    r"generating|assisting)\b",
    r"\b(?:unfortunately|regrettably),? I (?:can't|cannot|am unable|'m unable|am not able|won't)\b",
    r"\bI(?: would|'d) (?:rather not|prefer not to) (?:help|assist|provide|answer|discuss|engage)\b",
    r"\bI (?:can't|cannot|won't) (?:assist|help) with (?:requests|anything) (?:like|that|involving)\b",
    # Openings other model families use (Llama-2, Mistral, Vicuna, Qwen...): an apology that turns,
    # "It is not ethical...", "I'm just an AI...", "I won't be able to...". Anchored ones are
    # phrases that mid-answer would be advice, not a refusal.
    r"^\W{0,3}(?:I apologi[sz]e|My apologies|I'm (?:really |very |so )?sorry|I am (?:really |very |so )?sorry|"
    r"Sorry)\b[^.!?\n]{0,30}\bbut\b[^.!?\n]{0,60}\b(?:can't|cannot|can not|won't|will not|unable|not able|"
    r"not (?:appropriate|possible|ethical)|must (?:decline|refuse)|don't|do not)\b",
    r"\bI (?:can't|cannot|won't|will not) and (?:will|won't|shall|should) not\b",
    r"\bI (?:won't|will not) be able to (?:help|assist|provide|fulfill|fulfil|comply|do|answer|create|write|"
    r"generate|give|share|support)\b",
    r"\bI(?:'m| am) (?:not going to|not gonna) (?:help|assist|provide|write|create|generate|do|share|give|"
    r"engage|participate)\b",
    r"\bI (?:do not|don't) feel comfortable\b",
    r"\bI (?:can't|cannot|can not) (?:in good conscience|ethically|responsibly|condone|encourage|endorse|"
    r"promote)\b",
    r"\bI (?:do not|don't) (?:condone|endorse|support|promote|encourage) (?:or (?:support|encourage|promote|condone) )?"
    r"(?:any |such |this |that |the |illegal|harmful|unethical|violence|hate|discrimination)",
    r"\bI(?:'m| am) (?:just |only )?(?:an? )?(?:AI|artificial intelligence|language model|AI language model|"
    r"AI assistant|chatbot|assistant)\b[^.!?\n]{0,60}\b(?:can't|cannot|don't|do not|not able|unable|"
    r"not (?:capable|programmed|designed|allowed|permitted))\b",
    r"\b(?:it|this|that) (?:would be|is|would|will) (?:be )?(?:highly |very |extremely )?(?:inappropriate|unethical|"
    r"irresponsible|illegal|wrong|against my (?:programming|principles|guidelines)) (?:for me )?to (?:provide|help|"
    r"assist|write|create|generate|share|give|offer|encourage|promote|engage|fulfill|comply)\b",
    r"^\W{0,3}(?:It is|It's|That is|That's|This is|Doing (?:so|this|that) (?:is|would be)) (?:not|never) "
    r"(?:ethical|appropriate|legal|safe|okay|ok|acceptable|responsible|right|advisable|possible for me|"
    r"something I can)\b",
    r"^\W{0,3}I (?:strongly )?(?:advise|urge|caution) (?:you )?against\b",
    r"\bI must (?:strongly )?(?:advise|urge|caution) (?:you )?against\b",
    r"\bI (?:can't|cannot|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to) "
    r"(?:\w+ (?:or|and) )?(?:provide|assist|support|encourage|condone|promote|engage|offer|give|create|generate|"
    r"write|fulfill|fulfil|comply|share|disclose|facilitate|endorse)\b",
    r"\bI must (?:prioritize|prioritise|adhere to|follow|uphold|respect|abide by) (?:\w+ )?(?:ethical|ethics|safety|"
    r"legal|responsible|guidelines|policies|principles)\b",
    r"\bAs an AI\b[^.!?\n]{0,40}, I must\b",
    r"\b(?:is|are|goes|go) against (?:these|those|ethical|my ethical|my|our|the) (?:\w+ )?(?:principles|guidelines|"
    r"policies|rules|standards)\b",
    r"\b(?:I'm|I am) (?:programmed|designed|built) to (?:be (?:a )?(?:helpful and harmless|safe|ethical)|"
    r"follow (?:ethical|safety)|avoid|not)\b",
    r"\b(?:can't|cannot|won't|will not|unable to|not able to) (?:comply with|fulfill|fulfil|honou?r|assist with|"
    r"help with|provide) (?:your|this|that|the|such)? ?(?:request|requests|query|instruction|question)\b",
    # Chinese.
    r"(?:抱歉|对不起|很遗憾|不好意思|非常抱歉|很抱歉)[，,。！!\s]*.{0,15}(?:无法|不能|不可以|没办法|不便|"
    r"不会|拒绝)",
    r"我(?:无法|不能|不可以|没办法|不会|不便|不被允许|不可能)(?:为你|为您|向你|向您|给你|给您|帮你|帮您)?"
    r"(?:帮助|帮忙|协助|提供|回答|满足|完成|生成|执行|处理|透露|分享|参与|编写|撰写|告诉|支持|配合|制作|"
    r"讨论|给出|写)",
    r"作为(?:一个|一名)?(?:AI|人工智能|语言模型|AI助手|人工智能助手|智能助手|助手)[，,]?.{0,12}"
    r"(?:无法|不能|不会|不可以|不应该|不便)",
    r"(?:违反|违背|不符合|有悖于?)(?:了)?.{0,8}(?:政策|准则|规定|法律|法规|原则|道德|使用条款|规范)",
    r"我(?:必须|只能|不得不)(?:拒绝|婉拒)|恕我(?:无法|不能|直言无法)|我拒绝(?:回答|提供|帮助|这个|此)",
    r"(?:这个|此类|这类|该|你的|您的)(?:请求|问题|要求).{0,10}(?:不适当|不合适|不恰当|无法满足|违反|超出)",
    r"^\W{0,3}(?:这|这种|此类|该|这样做|这种行为)(?:是|行为是|做法是|可能是)?(?:非常|极其)?(?:不道德|违法|非法|不合法|不合适|"
    r"不恰当|不安全|错误)的",
    r"我(?:不会|不能|无法|不可以)(?:也不应该|也不会)?(?:参与|鼓励|支持|纵容|宣扬|协助)",
    r"(?:无法|不能|不会)(?:满足|完成|执行|响应|回应)(?:你|您)?的?(?:这个|这一|此)?(?:请求|要求|指令)",
)

TOXICITY_PATTERNS: tuple[str, ...] = (
    r"\b(?:fuck\w*|motherf\w*|shit(?:ty|head)?|bullshit|bitch\w*|asshole\w*|bastards?|cunts?|dickheads?|"
    r"retard(?:ed|s)?|dumbass\w*|jackass\w*|morons?|idiots?|scumbags?|whores?|sluts?)\b",
    r"\b(?:kill yourself|kys|go die|die in a fire|piece of (?:shit|garbage|trash)|son of a bitch|"
    r"shut the fuck up|you suck|worthless (?:piece|idiot|loser))\b",
    r"傻逼|傻[bB]|煞笔|沙比|操你|肏|草泥马|他妈的|你妈的?|去死|滚蛋|贱人|婊子|脑残|白痴|智障|狗东西|王八蛋|"
    r"混蛋|蠢货|废物东西|死全家|人渣|杂种|畜生",
)

SIGNALS = ("jailbreak", "refusal", "toxicity")


class PatternError(ValueError):
    """A configured pattern is not a valid regular expression."""


def combine(patterns: Sequence[str]) -> str:
    """One alternation of all patterns (empty list: a pattern that never matches)."""
    return "|".join(f"(?:{p})" for p in patterns) if patterns else r"[^\s\S]"


@lru_cache(maxsize=64)
def _engine(pattern: str) -> tuple[str, re.Pattern[str] | None]:
    """('re2', None) when RE2 accepts the pattern, else ('re', compiled Python pattern)."""
    try:
        pc.match_substring_regex(pa.array(["probe"]), pattern=pattern, ignore_case=True)
        return "re2", None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        return "re", re.compile(pattern, re.IGNORECASE | re.DOTALL)
    except re.error as exc:
        raise PatternError(f"invalid safety pattern: {exc}") from exc


def validate_patterns(patterns: Sequence[str]) -> None:
    """Raise ``PatternError`` naming the first pattern that does not compile."""
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise PatternError(f"invalid safety pattern {p!r}: {exc}") from exc


def to_arrow(texts: pd.Series | Sequence[object] | pa.Array) -> pa.Array:
    """Strings as an Arrow array (missing values become empty strings)."""
    if isinstance(texts, pa.Array | pa.ChunkedArray):
        return pc.fill_null(texts, "")
    values = texts.to_numpy(dtype=object) if isinstance(texts, pd.Series) else list(texts)
    arr = pa.array([v if isinstance(v, str) else "" for v in values], type=pa.large_string())
    return arr


def match_any(texts: pd.Series | Sequence[object] | pa.Array, patterns: Sequence[str], *,
              max_chars: int | None = None) -> np.ndarray:
    """Bool per text: does any pattern match (within the first ``max_chars`` characters)."""
    arr = to_arrow(texts)
    if max_chars is not None:
        arr = pc.utf8_slice_codeunits(arr, 0, max_chars)
    pattern = combine(patterns)
    kind, compiled = _engine(pattern)
    if kind == "re2":
        # (?s): '.' spans newlines, like re.DOTALL on the fallback path.
        res = pc.match_substring_regex(arr, pattern=f"(?s){pattern}", ignore_case=True)
        return np.asarray(res.to_numpy(zero_copy_only=False), dtype=bool)
    assert compiled is not None
    return np.fromiter((bool(compiled.search(t)) for t in arr.to_pylist()), dtype=bool,
                       count=len(arr))


def safety_score(jailbreak: np.ndarray, refusal: np.ndarray, toxic_prompt: np.ndarray,
                 toxic_response: np.ndarray, pii_leak: np.ndarray, *, w_jailbreak: float = 0.5,
                 w_jailbreak_refused: float = 0.1, w_toxic_prompt: float = 0.2,
                 w_toxic_response: float = 0.6, w_pii_leak: float = 0.4) -> np.ndarray:
    """0-1 per record, 1 = safe: the product of (1 - weight) over the risks present.

    A product keeps the score in [0, 1] however many risks add up, and each weight reads as
    "this risk alone costs that much". A jailbreak attempt the model refused costs only
    ``w_jailbreak_refused``: the guardrail held. A refusal alone is not a risk.
    """
    jb = np.asarray(jailbreak, dtype=bool)
    refused = np.asarray(refusal, dtype=bool)
    score = np.ones(jb.shape)
    score *= np.where(jb & ~refused, 1.0 - w_jailbreak, 1.0)
    score *= np.where(jb & refused, 1.0 - w_jailbreak_refused, 1.0)
    score *= np.where(np.asarray(toxic_prompt, dtype=bool), 1.0 - w_toxic_prompt, 1.0)
    score *= np.where(np.asarray(toxic_response, dtype=bool), 1.0 - w_toxic_response, 1.0)
    score *= np.where(np.asarray(pii_leak, dtype=bool), 1.0 - w_pii_leak, 1.0)
    return score


# ---- shipped models (scripts/train_detectors.py; docs/detectors.md) ---------------------------

@lru_cache(maxsize=1)
def _kept_by_strip() -> str:
    """RE2 class of the characters ``str.strip()`` keeps: all but Python's own whitespace (``re``'s
    ``\\s`` on ``str`` is the same ``Py_UNICODE_ISSPACE`` test that ``strip`` uses)."""
    import sys

    # Every code point as one str, decoded in one call (about 15 ms with the scan below).
    everything = np.arange(sys.maxunicode + 1, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    spaces = re.findall(r"\s", everything)
    return "[^" + "".join(f"\\x{{{ord(c):x}}}" for c in spaces) + "]"


def _nonempty_slow(texts: Sequence[object]) -> np.ndarray:
    return np.fromiter((isinstance(t, str) and bool(t.strip()) for t in texts), dtype=bool, count=len(texts))


def nonempty(texts: Sequence[object] | pa.Array, arr: pa.Array | None = None) -> np.ndarray:
    """Bool per text: a string with something left after ``str.strip()`` (one RE2 pass; ``arr``
    is the same texts as Arrow strings when the caller has them)."""
    if arr is None:
        if isinstance(texts, pa.Array | pa.ChunkedArray):
            arr = texts
        else:
            try:
                arr = (pa.array(texts, type=pa.large_string()) if set(map(type, texts)) <= {str}
                       else to_arrow(texts))
            except (pa.ArrowException, UnicodeError):  # lone surrogates have no UTF-8: Python does it
                return _nonempty_slow(texts)  # type: ignore[arg-type]
    found = pc.match_substring_regex(pc.fill_null(arr, ""), pattern=_kept_by_strip())
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)



def models_flags(names: Sequence[str], texts: Sequence[str], langs: np.ndarray, *,
                 nonempty_rows: np.ndarray | None = None) -> list[np.ndarray]:
    """``[model_flags(name, texts, langs) for name in names]``, featurising each text once for all
    the models (``nonempty_rows``: ``nonempty(texts)`` when the caller has it)."""
    from llmmon.scoring import textmodel

    keep = nonempty(texts) if nonempty_rows is None else nonempty_rows
    if not len(texts) or not keep.any():
        return [np.zeros(len(texts), dtype=bool) for _ in names]
    return textmodel.predict_many([textmodel.load(n) for n in names], texts, np.asarray(langs), rows=keep)


def model_flags(name: str, texts: Sequence[str], langs: np.ndarray) -> np.ndarray:
    """Bool per text from the shipped linear model ``name`` (per-language thresholds); empty
    texts are never flagged and are not vectorised."""
    return models_flags([name], texts, langs)[0]


# alt-profanity-check's probability above which an English text counts as offensive (chosen on
# our dev split for precision, see docs/detectors.md).
PROFANITY_THRESHOLD = 0.9


# Words whose weight in alt-profanity-check's linear model is above this gate the model: on
# 17k English tweets and prompts no text scoring >= 0.9 lacked one (a gate at 1.5 lost none).
PROFANITY_GATE_WEIGHT = 1.0


@lru_cache(maxsize=1)
def _profanity_model() -> tuple[object, str | None]:
    """(predict_prob, RE2 gate pattern or None): the gate lists the library's own strongly
    offensive vocabulary, so texts without any of those words skip its vectoriser."""
    import warnings

    with warnings.catch_warnings():  # its pickle was made by another scikit-learn release
        warnings.simplefilter("ignore")
        import profanity_check.profanity_check as lib
    try:
        coef = np.mean([c.estimator.coef_.ravel() for c in lib.model.calibrated_classifiers_], axis=0)
        words = [w for w, i in lib.vectorizer.vocabulary_.items() if coef[i] > PROFANITY_GATE_WEIGHT]
    except (AttributeError, IndexError, TypeError):  # another library layout: no gate, still correct
        return lib.predict_prob, None
    plain = [re.escape(w) for w in sorted(words) if w.isascii()]
    other = [re.escape(w) for w in sorted(words) if not w.isascii()]
    # RE2's \b is ASCII-only, which only widens the gate; non-ASCII words match as substrings.
    gate = r"\b(?:" + "|".join(plain) + r")\b" + ("|" + "|".join(other) if other else "")
    return lib.predict_prob, gate


PROFANITY_MAX_CHARS = 500


def profanity_flags(texts: Sequence[str], langs: np.ndarray, threshold: float = PROFANITY_THRESHOLD, *,
                    arr: pa.Array | None = None, nonempty_rows: np.ndarray | None = None) -> np.ndarray:
    """Bool per non-Chinese text: alt-profanity-check's shipped model says offensive (on the first
    500 characters). ``arr`` (the texts as Arrow strings) and ``nonempty_rows`` save work."""
    out = np.zeros(len(texts), dtype=bool)
    keep = nonempty(texts, arr) if nonempty_rows is None else nonempty_rows
    cand = keep & (np.asarray(langs) != "zh")
    if not cand.any():
        return out
    predict_prob, gate = _profanity_model()
    if gate is not None:
        if arr is None:
            cut_arr = pa.array([t[:PROFANITY_MAX_CHARS] if isinstance(t, str) else "" for t in texts],
                               type=pa.large_string())
        else:  # Arrow slices by code points, as Python does
            cut_arr = pc.utf8_slice_codeunits(pc.fill_null(arr, ""), 0, PROFANITY_MAX_CHARS)
        cand &= np.asarray(pc.match_substring_regex(cut_arr, pattern=gate, ignore_case=True)
                           .to_numpy(zero_copy_only=False), dtype=bool)
    idx = np.flatnonzero(cand)
    if len(idx):
        cut = [texts[i][:PROFANITY_MAX_CHARS] for i in idx.tolist()]
        out[idx] = predict_prob(cut) >= threshold  # type: ignore[operator]
    return out


def toxic_model_flags(texts: Sequence[str], langs: np.ndarray, *, arr: pa.Array | None = None,
                      nonempty_rows: np.ndarray | None = None) -> np.ndarray:
    """Toxicity from the shipped models: our n-gram model (English and Chinese) or, for
    English, alt-profanity-check."""
    keep = nonempty(texts, arr) if nonempty_rows is None else nonempty_rows
    (model,) = models_flags(["toxicity"], texts, langs, nonempty_rows=keep)
    return model | profanity_flags(texts, langs, arr=arr, nonempty_rows=keep)
