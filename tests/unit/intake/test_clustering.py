"""Similar-report clusters by meaning: paraphrases of one problem group, different problems stay
apart, surges are judged by event time against the history of the problem's topic.

Tests about wording use the real sentence encoder; tests about the clustering logic use fake
report vectors (one random direction per problem, a little noise per wording), so they say
exactly what they mean."""

from __future__ import annotations

import json
import random
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from riskrelay.intake.clustering import (
    ClusterAssignment,
    ClusterConfig,
    ClusterIndex,
    Vector,
    assign_to_cluster,
    cluster_id_for,
    cosine,
    prune,
    quantize,
    topic_is_live,
)
from riskrelay.intake.encoder import TextEncoder
from riskrelay.shared.events import Indicator

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday; event time only, no clock is read
PRODUCT = "Web Shop"
DIM = 384
SAMPLES = Path(__file__).parent / "samples"

# Six customers' wordings of each of three incidents.
INCIDENTS: dict[str, list[str]] = {
    name: texts
    for name, texts in json.loads((SAMPLES / "surge_reports.json").read_text()).items()
    if not name.startswith("_")
}
EXPOSURE = INCIDENTS["data_exposure"]


def direction(name: str) -> Vector:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    vector = rng.standard_normal(DIM)
    return np.asarray(vector / np.linalg.norm(vector), dtype=np.float32)


def report(problem: str, wording: int = 0) -> Vector:
    """A fake embedding of one wording of ``problem``: cosine about 0.8 with the problem's other
    wordings, about 0 with other problems."""
    vector = direction(problem) + 0.5 * direction(f"{problem}#{wording}")
    return np.asarray(vector / np.linalg.norm(vector), dtype=np.float32)


def assign(
    index: ClusterIndex,
    ticket: str,
    customer: str,
    vector: Vector | None,
    minutes: float = 0,
    product: str = PRODUCT,
    config: ClusterConfig | None = None,
) -> ClusterAssignment:
    result = assign_to_cluster(
        index,
        ticket_id=ticket,
        customer_id=customer,
        occurred_at=T0 + timedelta(minutes=minutes),
        product=product,
        vector=vector,
        config=config or ClusterConfig(),
    )
    assert result is not None, "a problem report (a ticket with a vector) always clusters"
    return result


def assign_without_vector(index: ClusterIndex, vector: Vector | None) -> ClusterAssignment | None:
    return assign_to_cluster(
        index, ticket_id="R-1", customer_id="C-1", occurred_at=T0, product=PRODUCT, vector=vector
    )


# --- by meaning (the real encoder) ---------------------------------------------------------


def test_six_wordings_of_one_data_exposure_join_one_cluster(
    sentence_encoder: TextEncoder,
) -> None:
    vectors = sentence_encoder.encode(EXPOSURE)
    index = ClusterIndex()
    results = [
        assign(index, f"T-{n}", f"C-{n}", vector, minutes=5 * n) for n, vector in enumerate(vectors)
    ]
    assert {r.cluster_id for r in results} == {cluster_id_for("web shop", "T-0")}
    assert results[-1].info.size == 6
    assert results[-1].info.distinct_customers == 6
    assert [r.surge_started for r in results] == [False] * 4 + [True, False]
    assert set(results[4].tickets_to_flag) == {"T-0", "T-1", "T-2", "T-3"}


def test_interleaved_incidents_on_one_product_each_form_their_own_cluster(
    sentence_encoder: TextEncoder,
) -> None:
    vectors = {name: sentence_encoder.encode(texts) for name, texts in INCIDENTS.items()}
    index = ClusterIndex()
    clusters: dict[str, set[str]] = {name: set() for name in INCIDENTS}
    for wording in range(6):
        for name in INCIDENTS:
            ticket = f"{name}-{wording}"
            result = assign(index, ticket, ticket, vectors[name][wording], minutes=wording)
            clusters[name].add(result.cluster_id)
    assert all(len(ids) == 1 for ids in clusters.values()), clusters
    assert len(set.union(*clusters.values())) == 3
    assert all(cluster.size == 6 for cluster in index.clusters.values())
    assert len(index.topics) == 3


def test_in_any_arrival_order_each_incident_keeps_a_surge_in_one_cluster(
    sentence_encoder: TextEncoder,
) -> None:
    """Arrival order decides which wording starts a cluster, so a far-off wording may stay on
    its own; the other five of its incident still surge together, and incidents never mix."""
    reports = [
        (name, text, vector)
        for name, texts in INCIDENTS.items()
        for text, vector in zip(texts, sentence_encoder.encode(texts), strict=True)
    ]
    shuffler = random.Random(17)
    for _ in range(25):
        shuffler.shuffle(reports)
        index = ClusterIndex()
        members: dict[str, Counter[str]] = {name: Counter() for name in INCIDENTS}
        for n, (name, _, vector) in enumerate(reports):
            members[name][assign(index, f"T-{n}", f"C-{n}", vector, minutes=n).cluster_id] += 1
        for counts in members.values():
            assert counts.most_common(1)[0][1] >= 5
        owners = [c for counts in members.values() for c in counts]
        assert len(owners) == len(set(owners)), "a cluster holds two incidents"


# --- who clusters ----------------------------------------------------------------------------


def test_a_ticket_without_a_vector_takes_no_part() -> None:
    index = ClusterIndex()
    assert assign_without_vector(index, None) is None
    assert index.clusters == {}
    assert index.ticket_clusters == {}


def test_a_zero_vector_is_similar_to_nothing() -> None:
    index = ClusterIndex()
    assert assign_without_vector(index, np.zeros(DIM, dtype=np.float32)) is None


def test_similar_reports_join_dissimilar_ones_start_their_own_cluster() -> None:
    index = ClusterIndex()
    first = assign(index, "T-1", "C-1", report("exposure", 1))
    second = assign(index, "T-2", "C-2", report("exposure", 2), minutes=5)
    other = assign(index, "T-3", "C-3", report("login", 1), minutes=6)
    assert first.is_new_cluster
    assert not second.is_new_cluster
    assert second.cluster_id == first.cluster_id == cluster_id_for("web shop", "T-1")
    assert ClusterConfig().similarity_threshold <= second.similarity < 1
    assert second.info.size == 2
    assert second.info.distinct_customers == 2
    assert second.info.first_seen_at == T0
    assert other.is_new_cluster
    assert other.topic_id != first.topic_id


def test_the_same_problem_on_another_product_starts_its_own_cluster() -> None:
    index = ClusterIndex()
    shop = assign(index, "T-1", "C-1", report("exposure", 1), product="Web Shop")
    app = assign(index, "T-2", "C-2", report("exposure", 1), product="Mobile App")
    assert app.cluster_id != shop.cluster_id
    assert app.topic_id != shop.topic_id


def test_the_centroid_is_the_running_mean_of_the_members() -> None:
    index = ClusterIndex()
    vectors = [report("exposure", n) for n in range(4)]
    for n, vector in enumerate(vectors):
        assign(index, f"T-{n}", f"C-{n}", vector, minutes=n)
    [cluster] = index.clusters.values()
    mean = np.mean(vectors, axis=0)
    assert cosine(cluster.centroid, quantize(mean / np.linalg.norm(mean)).tobytes()) > 0.9999
    assert len(cluster.centroid) == 2 * DIM


def test_the_threshold_is_configurable() -> None:
    strict = ClusterConfig(similarity_threshold=0.95)
    index = ClusterIndex()
    first = assign(index, "T-1", "C-1", report("exposure", 1), config=strict)
    second = assign(index, "T-2", "C-2", report("exposure", 2), config=strict)
    assert second.cluster_id != first.cluster_id


def test_follow_up_of_a_member_changes_nothing() -> None:
    index = ClusterIndex()
    assign(index, "T-1", "C-1", report("exposure", 1))
    again = assign(index, "T-1", "C-1", report("login", 3), minutes=10)
    assert again.already_member
    assert again.changed_cluster_ids == ()
    assert again.info.size == 1
    assert assign(index, "T-1", "C-1", None, minutes=11).already_member


def test_a_cluster_closes_a_join_window_after_its_first_ticket_and_its_topic_carries_on() -> None:
    index = ClusterIndex()
    first = assign(index, "T-1", "C-1", report("exposure", 1))
    assign(index, "T-2", "C-2", report("exposure", 2), minutes=60 * 23)
    later = assign(index, "T-3", "C-3", report("exposure", 3), minutes=60 * 25)
    assert later.cluster_id != first.cluster_id
    assert later.is_new_cluster
    assert later.topic_id == first.topic_id
    assert index.topics[first.topic_id].reports == 3


# --- surges: distinct customers in the window ------------------------------------------------


def test_four_distinct_customers_are_no_surge_five_are() -> None:
    index = ClusterIndex()
    results = [
        assign(index, f"T-{n}", f"C-{n}", report("exposure", n), minutes=10 * n) for n in range(4)
    ]
    assert {r.cluster_id for r in results} == {results[0].cluster_id}
    assert not any(r.surging or r.surge for r in results)

    fifth = assign(index, "T-4", "C-4", report("exposure", 4), minutes=45)
    assert fifth.cluster_id == results[0].cluster_id
    assert fifth.surge_started
    assert set(fifth.tickets_to_flag) == {"T-0", "T-1", "T-2", "T-3"}
    assert fifth.surge is not None
    assert fifth.surge.indicator is Indicator.MULTIPLE_SIMILAR_REPORTS
    assert fifth.cluster_id in fifth.surge.evidence
    assert "5 distinct customers within 60 minutes" in fifth.surge.evidence
    assert "no history" in fifth.surge.evidence

    sixth = assign(index, "T-5", "C-5", report("exposure", 5), minutes=50)
    assert sixth.surging
    assert not sixth.surge_started
    assert sixth.tickets_to_flag == ()
    assert sixth.surge == fifth.surge


def test_the_same_customer_five_times_is_not_a_surge() -> None:
    index = ClusterIndex()
    results = [assign(index, f"T-{n}", "same", report("exposure", n), minutes=n) for n in range(5)]
    assert results[-1].info.size == 5
    assert results[-1].info.distinct_customers == 1
    assert not results[-1].surging


def test_the_window_is_event_time_and_inclusive_at_sixty_minutes() -> None:
    index = ClusterIndex()
    for n, minutes in enumerate([0, 15, 30, 45]):
        assign(index, f"T-{n}", f"C-{n}", report("exposure", n), minutes=minutes)
    assert assign(index, "T-4", "C-4", report("exposure", 4), minutes=60).surge_started

    spread = ClusterIndex()
    for n, minutes in enumerate([0, 15, 30, 45]):
        assign(spread, f"T-{n}", f"C-{n}", report("exposure", n), minutes=minutes)
    assert not assign(spread, "T-4", "C-4", report("exposure", 4), minutes=61).surging


def test_a_slow_trickle_over_hours_is_not_a_surge() -> None:
    index = ClusterIndex()
    results = [
        assign(index, f"T-{n}", f"C-{n}", report("exposure", n), minutes=40 * n) for n in range(6)
    ]
    assert results[-1].info.distinct_customers == 6
    assert not results[-1].surging


def test_out_of_order_arrival_uses_event_time() -> None:
    index = ClusterIndex()
    for n in [4, 0, 3, 1]:
        assert not assign(index, f"T-{n}", f"C-{n}", report("exposure", n), minutes=10 * n).surging
    last = assign(index, "T-2", "C-2", report("exposure", 2), minutes=20)
    assert last.surge_started
    assert last.info.first_seen_at == T0


def test_surge_customers_and_window_are_configurable() -> None:
    config = ClusterConfig(surge_customers=3, surge_window=timedelta(minutes=10))
    index = ClusterIndex()
    assign(index, "T-0", "C-0", report("exposure", 0), config=config)
    assign(index, "T-1", "C-1", report("exposure", 1), minutes=5, config=config)
    assert assign(
        index, "T-2", "C-2", report("exposure", 2), minutes=9, config=config
    ).surge_started


def test_a_full_member_list_still_counts_the_new_ticket() -> None:
    config = ClusterConfig(max_members=4)
    index = ClusterIndex()
    results = [
        assign(index, f"T-{n}", f"C-{n}", report("exposure", n), minutes=n, config=config)
        for n in range(5)
    ]
    [cluster] = index.clusters.values()
    assert len(cluster.members) == 4
    assert cluster.size == 5
    assert results[-1].added_member is None
    assert results[-1].surge_started
    assert set(results[-1].tickets_to_flag) == {"T-0", "T-1", "T-2", "T-3"}


# --- surges: more than usual for the topic ---------------------------------------------------


def morning_reports(
    index: ClusterIndex, day: int, customers: int, problem: str = "payment"
) -> list[ClusterAssignment]:
    """``customers`` reports of ``problem`` within 50 minutes, from 09:00 plus ``day`` minutes on
    day ``day`` (a little over 24 h after the day before: beyond its cluster's join window)."""
    return [
        assign(
            index,
            f"{problem}-{day}-{n}",
            f"{problem}-C-{day}-{n}",
            report(problem, day * 100 + n),
            minutes=day * 24 * 60 + day + n * 50 / customers,
        )
        for n in range(customers)
    ]


def test_a_daily_recurring_problem_at_its_usual_rate_is_not_a_surge() -> None:
    index = ClusterIndex()
    week = [morning_reports(index, day, customers=8) for day in range(7)]
    assert any(r.surge_started for r in week[0]), "on its first day it was a new problem"
    for day in week[1:]:
        assert len({r.cluster_id for r in day}) == 1, "a new cluster every day"
        assert not any(r.surging for r in day)
    assert len({r.topic_id for day in week for r in day}) == 1
    [topic] = index.topics.values()
    assert topic.periods_observed == 6
    assert topic.baseline == 8, "the busiest hour of every day held 8 customers"

    usual = morning_reports(index, 7, customers=8)
    assert not any(r.surging for r in usual)


def test_the_same_problem_at_several_times_its_rate_is_a_surge() -> None:
    index = ClusterIndex()
    for day in range(7):
        morning_reports(index, day, customers=8)
    busy = morning_reports(index, 7, customers=32)
    started = [n for n, r in enumerate(busy) if r.surge_started]
    assert len(started) == 1
    # 8 customers in the busiest hour are usual: P(X >= 19) is the first below 0.001.
    assert started[0] + 1 == 19
    surge = busy[-1].surge
    assert surge is not None
    assert "usually hold 8.0 customers (EWMA over 7 periods)" in surge.evidence


def test_a_quiet_week_brings_the_baseline_down_again() -> None:
    index = ClusterIndex()
    for day in range(7):
        morning_reports(index, day, customers=8)
    after_a_break = morning_reports(index, 21, customers=8)
    assert any(r.surge_started for r in after_a_break)


def test_a_new_problem_beside_a_recurring_one_surges_on_its_own_history() -> None:
    index = ClusterIndex()
    for day in range(7):
        morning_reports(index, day, customers=8)
    outage = morning_reports(index, 7, customers=5, problem="outage")
    assert outage[-1].surge_started
    assert outage[-1].topic_id != next(iter(index.topics))


def test_a_late_report_never_moves_the_baseline() -> None:
    index = ClusterIndex()
    morning_reports(index, 3, customers=2)
    [topic] = index.topics.values()
    before = topic.model_copy()
    assign(index, "late", "C-late", report("payment", 999), minutes=24 * 60)
    assert (topic.bucket_start, topic.baseline, topic.bucket_peak) == (
        before.bucket_start,
        before.baseline,
        before.bucket_peak,
    )


# --- state, replay, pruning ------------------------------------------------------------------


def mixed_stream() -> list[tuple[str, str, Vector, float]]:
    stream = []
    for n in range(30):
        problem = ["exposure", "login", "payment"][n % 3]
        stream.append((f"T-{n}", f"C-{n % 11}", report(problem, n), n * 7.0))
    return stream


def test_state_round_trips_through_json_and_gives_the_same_answers() -> None:
    stream = mixed_stream()
    live = ClusterIndex()
    for ticket, customer, vector, minutes in stream[:20]:
        assign(live, ticket, customer, vector, minutes)
    restored = ClusterIndex.model_validate(json.loads(json.dumps(live.model_dump(mode="json"))))
    assert restored.model_dump() == live.model_dump()
    for ticket, customer, vector, minutes in stream[20:]:
        a = assign(live, ticket, customer, vector, minutes)
        b = assign(restored, ticket, customer, vector, minutes)
        assert (a.cluster_id, a.similarity, a.info, a.surge) == (
            b.cluster_id,
            b.similarity,
            b.info,
            b.surge,
        )
    assert restored.model_dump() == live.model_dump()


def test_a_replay_gives_the_same_clusters_bit_for_bit() -> None:
    runs = []
    for _ in range(2):
        index = ClusterIndex()
        ids = [assign(index, t, c, v, m).cluster_id for t, c, v, m in mixed_stream()]
        runs.append((ids, index.model_dump(mode="json")))
    assert runs[0] == runs[1]
    assert runs[0][0][0].startswith("cl-")


def test_similarities_do_not_depend_on_the_order_clusters_were_loaded_in() -> None:
    built = ClusterIndex()
    for ticket, customer, vector, minutes in mixed_stream():
        assign(built, ticket, customer, vector, minutes)
    stored = built.model_dump()
    reordered = ClusterIndex.model_validate(
        {**stored, "clusters": dict(reversed(stored["clusters"].items()))}
    )
    probe = report("exposure", 1234)
    a = assign(built, "P-1", "C-P", probe, 30 * 7)
    b = assign(reordered, "P-1", "C-P", probe, 30 * 7)
    assert not a.is_new_cluster
    assert (a.cluster_id, a.similarity) == (b.cluster_id, b.similarity)


def test_prune_drops_idle_clusters_but_keeps_their_topic_longer() -> None:
    index = ClusterIndex()
    old = assign(index, "T-1", "C-1", report("exposure", 1))
    new = assign(index, "T-2", "C-2", report("login", 1), minutes=60 * 24 * 2)
    at = T0 + timedelta(days=2)
    pruned = prune(index, older_than=T0 + timedelta(days=1), at=at)
    assert pruned.clusters == [old.cluster_id]
    assert pruned.topics == [], "its baseline (one customer) has not decayed to the floor yet"
    assert set(index.clusters) == {new.cluster_id}
    assert "T-1" not in index.ticket_clusters
    again = assign(index, "T-9", "C-3", report("exposure", 2), minutes=60 * 24 * 2)
    assert again.is_new_cluster
    assert again.topic_id == old.topic_id, "the topic outlived its cluster"

    gone = prune(index, older_than=at + timedelta(days=1), at=at + timedelta(days=30))
    assert set(gone.clusters) == {new.cluster_id, again.cluster_id}
    assert set(gone.topics) == {old.topic_id, new.topic_id}
    assert index.clusters == {}
    assert index.topics == {}


def test_prune_never_drops_the_topic_of_a_remaining_cluster() -> None:
    index = ClusterIndex()
    kept = assign(index, "T-1", "C-1", report("exposure", 1), minutes=60)
    pruned = prune(index, older_than=T0, at=T0 + timedelta(days=29))
    assert not pruned
    assert kept.topic_id in index.topics


def test_a_topic_lives_while_its_baseline_can_tell_a_surge_something() -> None:
    config = ClusterConfig()
    index = ClusterIndex()
    once = assign(index, "T-1", "C-1", report("exposure", 1)).topic_id
    busy = morning_reports(index, 0, customers=8, problem="payment")[0].topic_id
    alive = {
        days: {
            name: topic_is_live(index.topics[topic], T0 + timedelta(days=days), config)
            for name, topic in (("once", once), ("busy", busy))
        }
        for days in (1, 2, 3, 8, 9, 31)
    }
    # A customer of one day decays to 0.49 on its third day; eight, to 0.46 on the ninth.
    assert alive == {
        1: {"once": True, "busy": True},
        2: {"once": True, "busy": True},
        3: {"once": False, "busy": True},
        8: {"once": False, "busy": True},
        9: {"once": False, "busy": False},
        31: {"once": False, "busy": False},
    }
    later = assign(index, "T-2", "C-2", report("exposure", 2), minutes=60 * 24 * 3)
    assert later.topic_id != once, "a dead topic is not matched, pruned or not"


def test_indexes_compare_by_their_state_whether_searched_or_not() -> None:
    searched = ClusterIndex()
    for ticket, customer, vector, minutes in mixed_stream()[:5]:
        assign(searched, ticket, customer, vector, minutes)
    loaded = ClusterIndex.model_validate(searched.model_dump())
    assert searched == loaded
    assign(searched, "P-1", "C-P", report("exposure", 99), 40)
    assert searched != loaded
