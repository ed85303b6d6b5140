"""The learned cascade on the shipped models and the bundled encoder, end to end in memory."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from riskrelay.intake.domain import AssessmentConfig, assess_ticket, complete_assessments
from riskrelay.intake.encoder import EncoderSettings
from riskrelay.intake.rules import RulePack, load_rule_pack
from riskrelay.intake.semantic.config import DetectionSettings
from riskrelay.intake.semantic.detector import (
    Screening,
    SemanticDetector,
    looks_english,
    rule_id_for,
)
from riskrelay.intake.semantic.features import hashed_terms
from riskrelay.intake.semantic.load import load_semantic_detector
from riskrelay.shared.events import Indicator, TicketEvent

pytestmark = pytest.mark.unit

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def detector() -> SemanticDetector:
    loaded = load_semantic_detector(DetectionSettings(semantic=True), EncoderSettings())
    assert loaded is not None
    return loaded


@pytest.fixture(scope="module")
def pack() -> RulePack:
    return load_rule_pack()


def _event(text: str, ticket: str = "T-1") -> TicketEvent:
    return TicketEvent.model_validate(
        {
            "specversion": "1.0",
            "id": f"e-{ticket}",
            "source": "test",
            "type": "riskrelay.ticket.created.v1",
            "time": NOW.isoformat(),
            "subject": ticket,
            "data": {
                "ticket_id": ticket,
                "subject": "Message from the chat",
                "description": text,
                "channel": "chat",
                "customer": {"id": f"C-{ticket}", "segment": "consumer"},
                "product": "cards",
                "priority": "normal",
                "tags": [],
            },
        }
    )


def _model_indicators(detector: SemanticDetector, pack: RulePack, text: str) -> set[Indicator]:
    config = AssessmentConfig(semantic=detector)
    [assessment] = complete_assessments([assess_ticket(_event(text), pack, config)], detector)
    return {d.indicator for d in assessment.detections if d.rule_id.startswith("model.")}


@pytest.mark.parametrize(
    ("text", "indicator"),
    [
        ("Someone I don't know has used my card without permission", Indicator.SECURITY_ISSUE),
        ("There is a charge on my card that I did not make", Indicator.SECURITY_ISSUE),
        ("My phone was stolen", Indicator.SECURITY_ISSUE),
        ("I think someone jacked my bank account", Indicator.SECURITY_ISSUE),
        ("I can see somebody else's orders and address in my account", Indicator.DATA_CONCERN),
        ("We are going to the press and posting this everywhere", Indicator.REPUTATION_THREAT),
    ],
)
def test_paraphrased_risks_are_found(
    detector: SemanticDetector, pack: RulePack, text: str, indicator: Indicator
) -> None:
    assert indicator in _model_indicators(detector, pack, text)


@pytest.mark.parametrize(
    "text",
    [
        "How do I pay my bill?",
        "What is my routing number?",
        "When is my card payment due?",
        "This is not a security issue, I just want to update my e-mail address.",
        "No data was exposed, I only have a question about exporting my invoices.",
    ],
)
def test_everyday_requests_and_denials_are_not_flagged(
    detector: SemanticDetector, pack: RulePack, text: str
) -> None:
    assert _model_indicators(detector, pack, text) == set()


def test_a_reworded_near_miss_is_not_flagged_however_its_score(
    detector: SemanticDetector, pack: RulePack
) -> None:
    text = "I made a purchase online and it says payment failed but I see it on my account"
    model = detector.models.indicators[Indicator.SECURITY_ISSUE]
    [vector] = detector.full.encode([text])
    [score] = model.full.scores(vector[None, :], [hashed_terms(text)])
    assert score >= model.full.threshold, "the classifier alone would flag it"
    near_miss = model.nearest_near_miss(vector)
    assert near_miss is not None
    assert near_miss[1] - model.nearest_similarity(vector) > model.near_miss_margin
    [result] = detector.detect([Screening(candidates=(text,), sentences=1, cluster_text=text)])
    assert Indicator.SECURITY_ISSUE not in {d.indicator for d in result.detections}


def test_a_risk_buried_in_a_long_message_is_found(
    detector: SemanticDetector, pack: RulePack
) -> None:
    filler = "I wanted to ask about the opening hours of your branch on Saturdays. " * 40
    text = f"{filler}Also, my credit card was stolen yesterday and there are charges I did not make. {filler}"
    assert Indicator.SECURITY_ISSUE in _model_indicators(detector, pack, text)


def test_a_detection_explains_itself(detector: SemanticDetector, pack: RulePack) -> None:
    config = AssessmentConfig(semantic=detector)
    text = "Hello there, I need some help today. My wallet was stolen with my debit card in it."
    [assessment] = complete_assessments([assess_ticket(_event(text), pack, config)], detector)
    [detection] = [
        d for d in assessment.detections if d.rule_id == rule_id_for(Indicator.SECURITY_ISSUE)
    ]
    assert detection.evidence == "My wallet was stolen with my debit card in it."
    explanation = detection.explanation
    assert explanation is not None
    assert explanation.score >= explanation.threshold
    assert explanation.model_version == detector.models.version
    assert explanation.encoder == detector.full.model_id
    assert len(explanation.nearest_examples) == 3
    assert all(-1 <= e.similarity <= 1 for e in explanation.nearest_examples)


@pytest.mark.parametrize("text", ["", "   \n\t ", "🙂🙂🙂 👍", "\x00\x01\x02 \u200b", "a" * 60_000])
def test_odd_input_has_a_clear_outcome(
    detector: SemanticDetector, pack: RulePack, text: str
) -> None:
    assert _model_indicators(detector, pack, text) == set()


def test_non_english_text_is_marked(detector: SemanticDetector, pack: RulePack) -> None:
    assert not looks_english("Mi tarjeta fue robada ayer y hay cargos que no hice en la cuenta")
    assert looks_english("My card was stolen yesterday and there are charges I did not make")
    config = AssessmentConfig(semantic=detector)
    event = _event("Mi tarjeta fue robada ayer y hay cargos que no hice en la cuenta")
    assert assess_ticket(event, pack, config).english is False


def test_a_batch_makes_two_full_encoder_calls(detector: SemanticDetector, pack: RulePack) -> None:
    """One call for every ticket's candidate sentences, one for the texts of the problem
    reports among them, however many tickets the batch holds."""
    calls: list[int] = []
    full = detector.full

    class Counting:
        model_id = full.model_id
        dim = full.dim

        def encode(self, texts: list[str]):  # type: ignore[no-untyped-def]
            calls.append(len(texts))
            return full.encode(texts)

    counting = SemanticDetector(models=detector.models, full=Counting(), fast=detector.fast)
    config = AssessmentConfig(semantic=counting)
    texts = ["My phone was stolen", "How do I pay my bill?", "My card was used abroad, not by me"]
    assessments = [assess_ticket(_event(t, f"T-{i}"), pack, config) for i, t in enumerate(texts)]
    completed = complete_assessments(assessments, counting)
    problems = sum(a.cluster_vector is not None for a in completed)
    assert problems == 2
    assert len(calls) == 2
    assert calls[1] == problems
