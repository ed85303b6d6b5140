"""Rule pack loading: validation errors name the rule, extensions add and disable rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from riskrelay.intake.errors import RulePackError
from riskrelay.intake.rules import (
    RulePack,
    build_rule_pack,
    default_rule_pack_path,
    load_rule_pack,
    required_needles,
)
from riskrelay.shared.events import Indicator

pytestmark = pytest.mark.unit


def rule(rule_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "indicator": "security_issue",
        "description": "test rule",
        "confidence": 0.5,
        "patterns": [r"\bzebra\b"],
        **overrides,
    }


def pack(*rules: dict[str, Any], version: str = "1", **extra: Any) -> dict[str, Any]:
    return {"version": version, "rules": list(rules), **extra}


def test_default_pack_loads_with_version_and_covers_every_text_indicator(
    rule_pack: RulePack,
) -> None:
    assert default_rule_pack_path().name == "default.yaml"
    assert rule_pack.version == "2025.11.2"
    covered = {r.indicator for r in rule_pack.rules}
    assert covered == {
        Indicator.DATA_CONCERN,
        Indicator.SECURITY_ISSUE,
        Indicator.COMPLIANCE_QUESTION,
        Indicator.SEVERE_IMPACT,
        Indicator.REPUTATION_THREAT,
    }
    assert rule_pack.severe_impact_amount_threshold == 10_000
    assert rule_pack.rule("impact.financial-loss-amount").min_amount == 10_000


def test_extension_file_adds_disables_and_overrides(tmp_path: Path) -> None:
    extension = tmp_path / "acme.yaml"
    extension.write_text(
        """
version: acme-3
disable: [reputation.executive, signature.mobile]
settings:
  severe_impact_amount_threshold: 50000
rules:
  - id: acme.recall
    indicator: severe_impact
    description: Acme's product recall wording.
    confidence: 0.9
    patterns: ['\\bwidget recall\\b']
""",
        encoding="utf-8",
    )
    combined = load_rule_pack([extension])
    assert combined.version == "2025.11.2+acme-3"
    ids = {r.id for r in combined.rules}
    assert "acme.recall" in ids
    assert "reputation.executive" not in ids
    assert "signature.mobile" not in {b.id for b in combined.boilerplate}
    assert combined.rule("impact.financial-loss-amount").min_amount == 50_000


def test_invalid_regex_names_the_rule() -> None:
    with pytest.raises(RulePackError) as caught:
        build_rule_pack([("ops.yaml", pack(rule("ops.broken", patterns=["(unclosed"])))])
    assert caught.value.rule_id == "ops.broken"
    assert "ops.yaml" in str(caught.value)
    assert "(unclosed" in str(caught.value)


def test_pattern_matching_empty_text_is_rejected() -> None:
    with pytest.raises(RulePackError, match="matches empty text") as caught:
        build_rule_pack([("ops.yaml", pack(rule("ops.everything", patterns=["x*"])))])
    assert caught.value.rule_id == "ops.everything"


def test_unknown_indicator_names_the_rule() -> None:
    with pytest.raises(RulePackError) as caught:
        build_rule_pack([("ops.yaml", pack(rule("ops.x"), rule("ops.y", indicator="gossip")))])
    assert caught.value.rule_id == "ops.y"
    assert "indicator" in caught.value.reason


def test_computed_indicators_cannot_be_text_rules() -> None:
    with pytest.raises(RulePackError, match="computed by intake") as caught:
        build_rule_pack(
            [("ops.yaml", pack(rule("ops.surge", indicator="multiple_similar_reports")))]
        )
    assert caught.value.rule_id == "ops.surge"


def test_confidence_out_of_range_names_the_rule() -> None:
    with pytest.raises(RulePackError) as caught:
        build_rule_pack([("ops.yaml", pack(rule("ops.sure", confidence=1.5)))])
    assert caught.value.rule_id == "ops.sure"


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(RulePackError, match="Extra inputs") as caught:
        build_rule_pack([("ops.yaml", pack(rule("ops.typo", patern="x")))])
    assert caught.value.rule_id == "ops.typo"


def test_duplicate_rule_id_is_rejected() -> None:
    with pytest.raises(RulePackError, match="duplicate") as caught:
        build_rule_pack([("a.yaml", pack(rule("x.one"))), ("b.yaml", pack(rule("x.one")))])
    assert caught.value.rule_id == "x.one"
    assert caught.value.source == "b.yaml"


def test_disabling_an_unknown_id_is_rejected() -> None:
    with pytest.raises(RulePackError, match="no such rule") as caught:
        build_rule_pack([("a.yaml", pack(rule("x.one"))), ("b.yaml", pack(disable=["x.tow"]))])
    assert caught.value.rule_id == "x.tow"


def test_rule_without_patterns_or_amount_is_rejected() -> None:
    with pytest.raises(RulePackError, match="needs patterns") as caught:
        build_rule_pack([("a.yaml", pack(rule("x.empty", patterns=[])))])
    assert caught.value.rule_id == "x.empty"


def test_missing_version_is_rejected() -> None:
    with pytest.raises(RulePackError, match="version"):
        build_rule_pack([("a.yaml", {"rules": [rule("x.one")]})])


def test_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(RulePackError, match="mapping"):
        load_rule_pack([bad])


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(RulePackError, match="cannot read"):
        load_rule_pack([tmp_path / "absent.yaml"])


def test_rule_ids_must_be_lowercase_slugs() -> None:
    with pytest.raises(RulePackError):
        build_rule_pack([("a.yaml", pack(rule("Has Spaces")))])


@pytest.mark.parametrize(
    ("pattern", "needles"),
    [
        (r"\bexploit(?:ed|able)?\b", {"exploit"}),
        (r"(?:really )?\bbreach\b", {"breach"}),
        # The parser factors the common "l" out; what is left is still required.
        (r"\b(?:lawsuit|legal action)\b", {"awsuit", "egal action"}),
        (r"unauthori[sz]ed access", {"unauthori"}),
        (r"\b(?-i:GDPR)\b", {"gdpr"}),
        (r"\b(?:\d+k?|thousands of)\s+followers\b", {"followers"}),
        (r"a|bcd", None),  # too short to be selective
        (r"\d{3}-\d{4}", None),  # no literal at all
        (r"(?:foo)?bar?", None),  # only "ba" is required
    ],
)
def test_required_needles(pattern: str, needles: set[str] | None) -> None:
    assert required_needles(pattern) == (frozenset(needles) if needles else None)


CORPUS = [
    "I think my personal data was exposed in your last update.",
    "Customer records have been leaked online! My account was hacked.",
    "There were unauthorized transactions; someone logged in from an unknown device.",
    "Under GDPR I request a copy of my personal data. I will tell the ICO and my lawyer.",
    "We lost $25,000; production is down and we cannot process orders. It caught fire.",
    "I'm going to the press and will post this on Twitter; your CEO will hear of it.",
    "My 20k followers will know. Privacy concerns! CVE-2024-12345 SQL injection.",
    "Sent my invoices to the wrong person. Is this even legal? Not compliant with PCI DSS.",
]


@pytest.mark.parametrize("text", CORPUS)
def test_needle_prefilter_never_hides_a_match(text: str, rule_pack: RulePack) -> None:
    present = rule_pack.present_needles(text.lower())
    for compiled in rule_pack.rules:
        if compiled.regex is not None and compiled.regex.search(text):
            assert compiled.may_match(present), compiled.id


def test_needle_automaton_finds_exactly_the_needles_a_substring_search_finds(
    rule_pack: RulePack,
) -> None:
    """Overlapping and nested needles included, over realistic traffic and the corpus."""
    from datetime import UTC, datetime

    from riskrelay.cli.sample_traffic import generate

    traffic = generate(300, seed=11, start=datetime(2026, 11, 2, 8, 0, tzinfo=UTC))
    texts = [*CORPUS, *(f"{e.data.subject}\n{e.data.description}" for e in traffic)]
    found_any = 0
    for text in texts:
        lowered = text.lower()
        expected = {needle for needle in rule_pack.needles if needle in lowered}
        assert rule_pack.present_needles(lowered) == expected
        found_any += bool(expected)
    assert found_any > len(CORPUS)
