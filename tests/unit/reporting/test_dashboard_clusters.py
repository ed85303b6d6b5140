"""The dashboard names clusters by their risk's title, never by a bare id or ticket text."""

from __future__ import annotations

from datetime import UTC, datetime

from riskrelay.reporting.dashboard import cluster_figure

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def row(**values: object) -> dict[str, object]:
    return {
        "cluster_id": "cl-7f3a",
        "size": 6,
        "distinct_customers": 5,
        "surging": True,
        "product": "Billing",
        "first_seen_at": AT,
        "last_flagged_at": AT,
        "risk_id": "R-1",
        "level": 5,
        "title": "Customers see other customers' invoices",
        **values,
    }


def test_a_classified_cluster_is_shown_by_its_risk_title() -> None:
    figure = cluster_figure(row())
    assert figure.title == "Customers see other customers' invoices"
    assert figure.cluster_id == "cl-7f3a"


def test_a_cluster_without_a_risk_yet_is_named_by_its_product() -> None:
    figure = cluster_figure(row(risk_id=None, level=None, title=None))
    assert figure.title == "Unclassified reports about Billing"
