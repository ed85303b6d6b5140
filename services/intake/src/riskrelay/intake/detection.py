"""Single-ticket indicators: run a compiled rule pack over redacted text.

The text a rule sees has already been normalized and redacted; boilerplate (signatures, legal
and unsubscribe footers) is removed here first, because a confidentiality footer mentioning
"unauthorised use" is not a security report. A match is dropped when a negation cue stands
among the last few words before it *in the same clause* ("this is not a security issue",
"no data was exposed"); clauses end at sentence punctuation and at "but"/"however", so "I'm
not sure, but my data was leaked" still fires. Each rule yields at most one detection, with
its first non-negated match (plus a little context) as evidence, so a reviewer sees exactly
what fired.
"""

from __future__ import annotations

import re

from riskrelay.intake.rules import CompiledRule, RulePack
from riskrelay.shared.events import Detection, Indicator, RiskFlag

_PARAGRAPH_END = re.compile(r"\n\s*\n")
_CLAUSE_BREAK = re.compile(
    r"[.!?;:\n]|\b(?:but|however|although|though|yet|except|whereas)\b", re.IGNORECASE
)
_WORD = re.compile(r"[\w']+")
_MAX_EVIDENCE = 1_000


def strip_boilerplate(text: str, pack: RulePack) -> str:
    """Remove the pack's boilerplate blocks (signatures, footers) from ``text``."""
    for block in pack.boilerplate:
        match = block.regex.search(text)
        while match is not None:
            start = match.start()
            if block.scope == "rest":
                text = text[:start].rstrip()
                break
            if block.scope == "paragraph":
                end_match = _PARAGRAPH_END.search(text, match.end())
                end = end_match.start() if end_match else len(text)
            else:
                end = match.end()
            text = text[:start] + text[end:]
            match = block.regex.search(text, start)
    return text.strip()


def is_negated(text: str, match_start: int, pack: RulePack) -> bool:
    """Whether a negation cue stands among the last words before ``match_start`` in its clause."""
    window_words = pack.negation_window_words
    if window_words == 0:
        return False
    lookback = text[max(0, match_start - 200) : match_start]
    clause_start = 0
    for clause_break in _CLAUSE_BREAK.finditer(lookback):
        clause_start = clause_break.end()
    clause = lookback[clause_start:]
    if pack.negation_exceptions is not None:
        clause = pack.negation_exceptions.sub(" ", clause)
    words = _WORD.findall(clause.casefold())[-window_words:]
    return any(word in pack.negation_cues or word.endswith("n't") for word in words)


def evidence_for(text: str, start: int, end: int, context_chars: int) -> str:
    """The matched span with up to ``context_chars`` either side, cut at word boundaries."""
    left = max(0, start - context_chars)
    right = min(len(text), end + context_chars)
    if left > 0 and not text[left - 1].isspace():
        space = text.find(" ", left, start)
        left = space + 1 if space != -1 else left
    if right < len(text) and not text[right].isspace():
        space = text.rfind(" ", end, right)
        right = space if space != -1 else right
    snippet = " ".join(text[left:right].split())
    prefix = "…" if left > 0 else ""
    suffix = "…" if right < len(text) else ""
    evidence = f"{prefix}{snippet}{suffix}"
    return evidence if len(evidence) <= _MAX_EVIDENCE else evidence[: _MAX_EVIDENCE - 1] + "…"


def _first_unnegated_match(rule: CompiledRule, text: str, pack: RulePack) -> re.Match[str] | None:
    assert rule.regex is not None
    for match in rule.regex.finditer(text):
        if not rule.negatable or not is_negated(text, match.start(), pack):
            return match
    return None


def detect_indicators(text: str, pack: RulePack, amount: float | None = None) -> list[Detection]:
    """Every rule of ``pack`` that fires on ``text`` (redacted, boilerplate already removed).

    ``amount`` is the largest money amount of the ticket (see :mod:`riskrelay.intake.money`),
    which rules with ``min_amount`` require.
    """
    detections: list[Detection] = []
    present = pack.present_needles(text.lower())
    for rule in pack.rules:
        if rule.min_amount is not None and (amount is None or amount < rule.min_amount):
            continue
        if not rule.may_match(present):
            continue
        if rule.regex is None:
            evidence = f"largest amount mentioned {amount:,.2f} >= threshold {rule.min_amount:,.2f}"
        else:
            match = _first_unnegated_match(rule, text, pack)
            if match is None:
                continue
            evidence = evidence_for(text, match.start(), match.end(), pack.evidence_context_chars)
            if rule.min_amount is not None:
                evidence = f"{evidence} (amount {amount:,.2f} >= {rule.min_amount:,.2f})"
        detections.append(
            Detection(
                indicator=rule.indicator,
                rule_id=rule.id,
                evidence=evidence[:_MAX_EVIDENCE],
                confidence=rule.confidence,
            )
        )
    return detections


AGENT_RISK_FLAG_RULE_ID = "agent.risk-flag"


def agent_risk_flag_detection(risk_flag: RiskFlag, redacted_description: str) -> Detection:
    """The agent's manual Risk Flag as a detection: a human judgement, so confidence 1."""
    category = f", category {risk_flag.category.value}" if risk_flag.category else ""
    note = f": {redacted_description}" if redacted_description else ""
    evidence = (
        f"Agent Risk Flag level {int(risk_flag.level)} ({risk_flag.level.label}){category}{note}"
    )
    if len(evidence) > _MAX_EVIDENCE:
        evidence = evidence[: _MAX_EVIDENCE - 1] + "…"
    return Detection(
        indicator=Indicator.AGENT_RISK_FLAG,
        rule_id=AGENT_RISK_FLAG_RULE_ID,
        evidence=evidence,
        confidence=1.0,
    )
