"""Single-ticket indicators from the default rule pack: positives, negations, boilerplate."""

from __future__ import annotations

import pytest

from riskrelay.intake.detection import detect_indicators, evidence_for, strip_boilerplate
from riskrelay.intake.money import largest_amount, parse_number
from riskrelay.intake.normalization import normalize_text
from riskrelay.intake.redaction import redact
from riskrelay.intake.rules import RulePack, build_rule_pack
from riskrelay.shared.events import Detection, Indicator

pytestmark = pytest.mark.unit


def detect(text: str, pack: RulePack) -> list[Detection]:
    normalized = normalize_text(text)
    clean = strip_boilerplate(redact(normalized).text, pack)
    return detect_indicators(clean, pack, largest_amount(normalized))


def indicators(text: str, pack: RulePack) -> set[Indicator]:
    return {d.indicator for d in detect(text, pack)}


POSITIVES: dict[Indicator, list[str]] = {
    Indicator.DATA_CONCERN: [
        "I think my personal data was exposed in your last update.",
        "Customer records have been leaked online!",
        "Is this a data breach? I got a letter.",
        "When I log in I can see another customer's orders and address.",
        "I have serious privacy concerns about the new tracking feature.",
        "Someone accessed my account and downloaded my invoices.",
        "You sent my details to the wrong person.",
    ],
    Indicator.SECURITY_ISSUE: [
        "My account was hacked last night.",
        "There were unauthorized transactions on my card.",
        "Someone logged in to my account from an unknown device.",
        "I found a security vulnerability in your login form.",
        "Your API has an SQL injection in the search endpoint.",
        "I received a phishing email pretending to be from you.",
        "My password was sent in plain text by email.",
        "I did not authorize these payments.",
    ],
    Indicator.COMPLIANCE_QUESTION: [
        "Under GDPR I request a copy of my personal data.",
        "Please delete all my personal data (right to be forgotten).",
        "I will file a complaint with the ICO.",
        "My lawyer will be in touch; we are considering legal action.",
        "Is this even legal? What are your regulatory obligations here?",
        "Are you compliant with PCI DSS?",
        "This is a subject access request.",
    ],
    Indicator.SEVERE_IMPACT: [
        "We lost $25,000 in sales because of the double charges.",
        "Your outage cost us 40.000 EUR today.",
        "Our production is down and we cannot process orders.",
        "We cannot pay our staff this month because the payout failed.",
        "The charger caught fire and burned my hand.",
        "We are facing significant financial losses.",
    ],
    Indicator.REPUTATION_THREAT: [
        "I'm going to the press with this.",
        "A journalist from the local newspaper already contacted me.",
        "I will post this on Twitter and warn everyone.",
        "Expect a 1-star review on Trustpilot.",
        "I'm escalating this to your CEO.",
        "I have 200k followers and they will hear about this.",
    ],
}

NEGATIVES: dict[Indicator, list[str]] = {
    Indicator.DATA_CONCERN: [
        "No data was exposed, I just want to update my address.",
        "My data was not leaked, I checked.",
        "Please update the shipping details on my order.",
        "Where can I find your privacy policy?",
    ],
    Indicator.SECURITY_ISSUE: [
        "This is not a security issue, just a question about the UI.",
        "My account was not hacked, I simply forgot my password.",
        "There was no unauthorized access.",
        "How do I change my password?",
    ],
    Indicator.COMPLIANCE_QUESTION: [
        "One sec, I'll look up my order number.",
        "Can you tell me when my order ships?",
    ],
    Indicator.SEVERE_IMPACT: [
        "I was charged $12.99 twice, please refund one.",
        "We have 50,000 employees and want a quote.",
        "Production is not down, only a little slow.",
        "I'd like to buy a $25,000 enterprise licence, please send an invoice.",
    ],
    Indicator.REPUTATION_THREAT: [
        "I won't post this on Twitter, don't worry.",
        "I love your product and left a great review.",
    ],
}


@pytest.mark.parametrize(
    ("indicator", "text"),
    [(indicator, text) for indicator, texts in POSITIVES.items() for text in texts],
)
def test_positive_examples_fire(indicator: Indicator, text: str, rule_pack: RulePack) -> None:
    assert indicator in indicators(text, rule_pack)


@pytest.mark.parametrize(
    ("indicator", "text"),
    [(indicator, text) for indicator, texts in NEGATIVES.items() for text in texts],
)
def test_negative_examples_do_not_fire(
    indicator: Indicator, text: str, rule_pack: RulePack
) -> None:
    assert indicator not in indicators(text, rule_pack)


def test_negation_only_reaches_its_own_clause(rule_pack: RulePack) -> None:
    assert Indicator.DATA_CONCERN in indicators(
        "I'm not sure what happened, but my data was leaked.", rule_pack
    )
    assert Indicator.DATA_CONCERN in indicators(
        "I don't know whether my data was exposed.", rule_pack
    )
    assert Indicator.SECURITY_ISSUE in indicators(
        "Not only was my account hacked, they also changed my email.", rule_pack
    )


def test_confidentiality_footer_does_not_trigger(rule_pack: RulePack) -> None:
    text = (
        "Hi, when will my order arrive?\n\n"
        "This e-mail and any attachments are confidential and may be privileged. "
        "Any unauthorized use, disclosure or distribution is prohibited; a data breach "
        "notification obligation may apply. If you are not the intended recipient, please "
        "notify the sender."
    )
    assert indicators(text, rule_pack) == set()


def test_signature_does_not_trigger(rule_pack: RulePack) -> None:
    text = (
        "Please reset my password.\n\nKind regards,\nJane Doe\nHead of Security Vulnerability "
        "Research\nAcme Legal Action Ltd"
    )
    assert indicators(text, rule_pack) == set()


def test_rfc_signature_delimiter_and_mobile_tagline_do_not_trigger(rule_pack: RulePack) -> None:
    text = "Where is my parcel?\n--\nJohn, Security Incident Response, Example Corp\n"
    assert indicators(text, rule_pack) == set()
    assert indicators("Where is my parcel?\nSent from my iPhone", rule_pack) == set()


def test_unsubscribe_footer_does_not_trigger(rule_pack: RulePack) -> None:
    text = (
        "Thanks for the quick fix!\n\n"
        "To unsubscribe from these emails and stop tracking my data click here.\n"
        "Privacy Policy | Terms | Contact"
    )
    assert indicators(text, rule_pack) == set()


def test_content_before_the_footer_still_fires(rule_pack: RulePack) -> None:
    text = (
        "My account was hacked.\n\nThis message is confidential and intended only for "
        "the addressee."
    )
    assert indicators(text, rule_pack) == {Indicator.SECURITY_ISSUE}


def test_evidence_is_redacted_with_context(rule_pack: RulePack) -> None:
    detections = detect(
        "Hello, I am jane@example.com and my account was hacked yesterday from 10.1.2.3 ok",
        rule_pack,
    )
    evidence = next(d.evidence for d in detections if d.rule_id == "security.account-compromise")
    assert "account was hacked" in evidence
    assert "[EMAIL]" in evidence
    assert "jane@example.com" not in evidence
    assert "10.1.2.3" not in evidence


def test_detection_carries_rule_id_and_confidence(rule_pack: RulePack) -> None:
    [detection] = detect("Our data was leaked.", rule_pack)
    assert detection.rule_id == "data.exposure"
    assert detection.confidence == rule_pack.rule("data.exposure").confidence


def test_severe_impact_threshold_is_configurable() -> None:
    pack = build_rule_pack(
        [
            (
                "t.yaml",
                {
                    "version": "t",
                    "settings": {"severe_impact_amount_threshold": 1000},
                    "rules": [
                        {
                            "id": "impact.amount",
                            "indicator": "severe_impact",
                            "description": "loss with amount",
                            "confidence": 0.8,
                            "min_amount": "threshold",
                            "patterns": [r"\blost\b"],
                        },
                        {
                            "id": "impact.any-big-amount",
                            "indicator": "severe_impact",
                            "description": "any amount of a million",
                            "confidence": 0.5,
                            "min_amount": 1_000_000,
                        },
                    ],
                },
            )
        ]
    )
    assert [d.rule_id for d in detect_indicators("we lost money", pack, 999.0)] == []
    assert [d.rule_id for d in detect_indicators("we lost money", pack, 1000.0)] == [
        "impact.amount"
    ]
    assert [d.rule_id for d in detect_indicators("we won money", pack, 2e6)] == [
        "impact.any-big-amount"
    ]
    assert [d.rule_id for d in detect_indicators("we lost money", pack, None)] == []


def test_strip_boilerplate_keeps_text_before_the_signature(rule_pack: RulePack) -> None:
    assert strip_boilerplate("Issue here.\n\nBest regards,\nBob", rule_pack) == "Issue here."


def test_evidence_for_cuts_at_word_boundaries() -> None:
    text = "alpha beta gamma delta epsilon zeta eta theta"
    start = text.index("delta")
    evidence = evidence_for(text, start, start + len("delta"), 8)
    assert evidence == "…gamma delta epsilon…"


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("we lost $25,000 yesterday", 25_000.0),
        ("we lost 25.000 EUR", 25_000.0),
        ("about £1.2m", 1_200_000.0),
        ("EUR 3.5 million", 3_500_000.0),
        ("12,50 €", 12.5),
        ("USD 1,234,567.89", 1_234_567.89),
        ("25k dollars", 25_000.0),
        ("25.000,50 €", 25_000.5),
        ("CHF 1'500", 1_500.0),
        ("$5 and then $700 and €90", 700.0),
        ("order 12345 on 2025-03-01", None),
        ("50,000 employees", None),
        ("no amount", None),
    ],
)
def test_largest_amount(text: str, amount: float | None) -> None:
    assert largest_amount(text) == amount


def test_parse_number_conventions() -> None:
    assert parse_number("1,234") == 1234
    assert parse_number("1.234") == 1234
    assert parse_number("1.2") == 1.2
    assert parse_number("1.200", scaled=True) == 1.2
    assert parse_number("1 234 567") == 1_234_567
