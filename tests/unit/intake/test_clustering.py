"""Similar-report clusters: paraphrases group, different problems stay apart, surges by event time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from riskrelay.intake.clustering import (
    ClusterAssignment,
    ClusterConfig,
    ClusterIndex,
    Fingerprint,
    assign_to_cluster,
    cluster_id_for,
    concept_similarity,
    fingerprint,
    prune,
    signature_similarity,
    similarity,
    surge_detection,
    text_features,
)
from riskrelay.shared.events import Indicator

pytestmark = pytest.mark.unit

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
PRODUCT = "Mobile App"

LOGIN_INCIDENT = [
    "can't log in to the app since this morning",
    "sign-in fails with error 500 since 9am",
    "Login not working - keeps spinning and then shows an error",
    "Unable to sign in on my phone, tried twice",
    "I cannot access my account, the log on page gives an error",
    "Authentication failed again!!",
]
BILLING_QUESTION = "Why was I charged twice for my subscription this month?"


def assign(
    index: ClusterIndex,
    ticket: str,
    customer: str,
    text: str,
    minutes: float = 0,
    product: str = PRODUCT,
    config: ClusterConfig | None = None,
) -> ClusterAssignment:
    config = config or ClusterConfig()
    return assign_to_cluster(
        index,
        ticket_id=ticket,
        customer_id=customer,
        occurred_at=T0 + timedelta(minutes=minutes),
        fp=fingerprint(text, product, config),
        config=config,
    )


# --- fingerprints ------------------------------------------------------------------------------


def test_paraphrases_reduce_to_the_same_concepts() -> None:
    first = text_features(LOGIN_INCIDENT[0])
    second = text_features(LOGIN_INCIDENT[1])
    assert first.concepts == second.concepts == {"fail", "login"}


def test_placeholders_numbers_and_times_are_not_words() -> None:
    features = text_features("[EMAIL] reported at 10:30 on 2025 that the colour picker resets")
    assert features.words == {"report", "colour", "picker", "reset"}


def test_fingerprint_is_serializable_and_deterministic() -> None:
    fp = fingerprint(LOGIN_INCIDENT[0], PRODUCT)
    assert all(isinstance(v, int) for v in fp.signature)
    assert len(fp.signature) == ClusterConfig().num_perm
    assert Fingerprint.model_validate_json(fp.model_dump_json()) == fp
    assert fingerprint(LOGIN_INCIDENT[0], PRODUCT) == fp
    assert fp.product == "mobile app"


def test_fingerprint_json_is_compact_and_earlier_decimal_lists_still_load() -> None:
    fp = fingerprint(LOGIN_INCIDENT[0], PRODUCT)
    compact = fp.model_dump_json()
    decimal = json.dumps({**json.loads(compact), "signature": fp.signature})
    assert len(json.loads(compact)["signature"]) * 1.5 < len(json.dumps(fp.signature))
    assert Fingerprint.model_validate_json(decimal) == fp
    assert fp.model_dump()["signature"] == fp.signature  # Python mode keeps the ints


def test_login_paraphrases_are_similar_billing_is_not() -> None:
    login = [fingerprint(t, PRODUCT) for t in LOGIN_INCIDENT]
    billing = fingerprint(BILLING_QUESTION, PRODUCT)
    for fp in login[1:]:
        assert similarity(login[0], fp) >= 0.5
        assert similarity(billing, fp) < 0.5


def test_same_words_for_another_product_are_not_similar() -> None:
    assert (
        similarity(fingerprint(LOGIN_INCIDENT[0], "App"), fingerprint(LOGIN_INCIDENT[0], "Web"))
        == 0
    )


def test_near_duplicates_without_support_vocabulary_match_by_minhash() -> None:
    a = fingerprint("The colour picker in the theme editor resets to purple", PRODUCT)
    b = fingerprint("theme editor colour picker resets to purple", PRODUCT)
    c = fingerprint("Exported spreadsheet columns are in the wrong order", PRODUCT)
    assert a.concepts == b.concepts == []
    assert signature_similarity(a.signature, b.signature) >= 0.8
    assert similarity(a, c) < 0.3


def test_generic_failure_alone_is_not_a_shared_concept() -> None:
    assert concept_similarity(["fail"], ["fail"]) == 0.0
    assert concept_similarity(["fail", "login"], ["fail", "login"]) == 1.0


def test_one_everyday_topic_in_common_is_not_one_incident() -> None:
    assert concept_similarity(["payment"], ["fail", "payment"]) == 0.0
    assert concept_similarity(["fail", "login"], ["login"]) == 0.0
    assert concept_similarity(["fail", "payment"], ["fail", "payment", "refund"]) == 2 / 3


def test_an_incident_concept_in_common_is_enough() -> None:
    assert concept_similarity(["outage"], ["fail", "outage"]) == 0.5
    assert concept_similarity(["hacked"], ["hacked"]) == 1.0


# --- assignment --------------------------------------------------------------------------------


def test_same_incident_in_different_words_joins_one_cluster() -> None:
    index = ClusterIndex()
    first = assign(index, "T-1", "c1", LOGIN_INCIDENT[0])
    second = assign(index, "T-2", "c2", LOGIN_INCIDENT[1], minutes=5)
    assert first.is_new_cluster
    assert not second.is_new_cluster
    assert second.cluster_id == first.cluster_id == cluster_id_for("mobile app", "T-1")
    assert second.info.size == 2
    assert second.info.distinct_customers == 2
    assert second.info.first_seen_at == T0


def test_billing_question_about_the_same_product_starts_its_own_cluster() -> None:
    index = ClusterIndex()
    login = assign(index, "T-1", "c1", LOGIN_INCIDENT[0])
    billing = assign(index, "T-2", "c2", BILLING_QUESTION, minutes=1)
    assert billing.is_new_cluster
    assert billing.cluster_id != login.cluster_id


def test_same_problem_for_another_product_starts_its_own_cluster() -> None:
    index = ClusterIndex()
    app = assign(index, "T-1", "c1", LOGIN_INCIDENT[0], product="Mobile App")
    web = assign(index, "T-2", "c2", LOGIN_INCIDENT[0], product="Web Portal")
    assert web.cluster_id != app.cluster_id


def test_follow_up_of_a_member_changes_nothing() -> None:
    index = ClusterIndex()
    assign(index, "T-1", "c1", LOGIN_INCIDENT[0])
    again = assign(index, "T-1", "c1", "completely different words now", minutes=10)
    assert again.already_member
    assert again.changed_cluster_ids == ()
    assert again.info.size == 1


def test_cluster_closes_after_the_join_window() -> None:
    index = ClusterIndex()
    first = assign(index, "T-1", "c1", LOGIN_INCIDENT[0])
    later = assign(index, "T-2", "c2", LOGIN_INCIDENT[1], minutes=60 * 25)
    assert later.cluster_id != first.cluster_id


# --- surges ------------------------------------------------------------------------------------


def test_four_distinct_customers_are_no_surge_five_are() -> None:
    index = ClusterIndex()
    results = [
        assign(index, f"T-{i}", f"c{i}", LOGIN_INCIDENT[i], minutes=10 * i) for i in range(4)
    ]
    assert {r.cluster_id for r in results} == {results[0].cluster_id}
    assert not any(r.surging for r in results)
    assert all(surge_detection(r.info) is None for r in results)

    fifth = assign(index, "T-4", "c4", LOGIN_INCIDENT[4], minutes=45)
    assert fifth.cluster_id == results[0].cluster_id
    assert fifth.surge_started
    assert fifth.surging
    assert set(fifth.tickets_to_flag) == {"T-0", "T-1", "T-2", "T-3"}
    detection = surge_detection(fifth.info)
    assert detection is not None
    assert detection.indicator is Indicator.MULTIPLE_SIMILAR_REPORTS
    assert fifth.cluster_id in detection.evidence

    sixth = assign(index, "T-5", "c5", LOGIN_INCIDENT[5], minutes=50)
    assert sixth.surging
    assert not sixth.surge_started
    assert sixth.tickets_to_flag == ()


def test_same_customer_five_times_is_not_a_surge() -> None:
    index = ClusterIndex()
    results = [
        assign(index, f"T-{i}", "same-customer", LOGIN_INCIDENT[i], minutes=i) for i in range(5)
    ]
    assert results[-1].info.size == 5
    assert results[-1].info.distinct_customers == 1
    assert not results[-1].surging


def test_window_is_event_time_and_inclusive_at_sixty_minutes() -> None:
    index = ClusterIndex()
    for i, minutes in enumerate([0, 15, 30, 45]):
        assign(index, f"T-{i}", f"c{i}", LOGIN_INCIDENT[i], minutes=minutes)
    assert assign(index, "T-4", "c4", LOGIN_INCIDENT[4], minutes=60).surge_started

    spread = ClusterIndex()
    for i, minutes in enumerate([0, 15, 30, 45]):
        assign(spread, f"T-{i}", f"c{i}", LOGIN_INCIDENT[i], minutes=minutes)
    assert not assign(spread, "T-4", "c4", LOGIN_INCIDENT[4], minutes=61).surging


def test_slow_trickle_over_hours_is_not_a_surge() -> None:
    index = ClusterIndex()
    results = [
        assign(index, f"T-{i}", f"c{i}", LOGIN_INCIDENT[i], minutes=40 * i) for i in range(6)
    ]
    assert results[-1].info.distinct_customers == 6
    assert not results[-1].surging


def test_out_of_order_arrival_uses_event_time() -> None:
    index = ClusterIndex()
    order = [4, 0, 3, 1]
    for i in order:
        assert not assign(index, f"T-{i}", f"c{i}", LOGIN_INCIDENT[i], minutes=10 * i).surging
    last = assign(index, "T-2", "c2", LOGIN_INCIDENT[2], minutes=20)
    assert last.surge_started
    assert last.info.first_seen_at == T0


def test_surge_threshold_is_configurable() -> None:
    config = ClusterConfig(surge_customers=3, surge_window=timedelta(minutes=10))
    index = ClusterIndex()
    assign(index, "T-0", "c0", LOGIN_INCIDENT[0], config=config)
    assign(index, "T-1", "c1", LOGIN_INCIDENT[1], minutes=5, config=config)
    assert assign(index, "T-2", "c2", LOGIN_INCIDENT[2], minutes=9, config=config).surge_started


# --- state -------------------------------------------------------------------------------------


def test_state_round_trips_through_json_and_gives_the_same_answers() -> None:
    live = ClusterIndex()
    for i in range(3):
        assign(live, f"T-{i}", f"c{i}", LOGIN_INCIDENT[i], minutes=i)
    assign(live, "B-1", "c9", BILLING_QUESTION, minutes=3)
    stored = json.loads(json.dumps(live.model_dump(mode="json")))
    restored = ClusterIndex.model_validate(stored)

    for index in (live, restored):
        result = assign(index, "T-3", "c3", LOGIN_INCIDENT[3], minutes=4)
        assert result.cluster_id == cluster_id_for("mobile app", "T-0")
        assert result.info.size == 4
    assert restored.model_dump() == live.model_dump()


def test_cluster_ids_are_deterministic_across_runs() -> None:
    runs = []
    for _ in range(2):
        index = ClusterIndex()
        runs.append(
            [assign(index, f"T-{i}", f"c{i}", LOGIN_INCIDENT[i]).cluster_id for i in range(3)]
        )
    assert runs[0] == runs[1]
    assert runs[0][0].startswith("cl-")


def test_prune_drops_old_clusters_and_their_tickets() -> None:
    index = ClusterIndex()
    old = assign(index, "T-1", "c1", LOGIN_INCIDENT[0])
    new = assign(index, "B-1", "c2", BILLING_QUESTION, minutes=60 * 24 * 3)
    removed = prune(index, older_than=T0 + timedelta(days=1))
    assert removed == [old.cluster_id]
    assert set(index.clusters) == {new.cluster_id}
    assert "T-1" not in index.ticket_clusters
    fresh = assign(index, "T-9", "c3", LOGIN_INCIDENT[1], minutes=60 * 24 * 3)
    assert fresh.is_new_cluster


def test_exemplars_are_bounded() -> None:
    config = ClusterConfig(max_exemplars=2, surge_customers=50)
    index = ClusterIndex()
    for i in range(6):
        assign(index, f"T-{i}", f"c{i}", LOGIN_INCIDENT[i], minutes=i, config=config)
    [cluster] = index.clusters.values()
    assert len(cluster.exemplars) == 2
    assert cluster.size == 6
