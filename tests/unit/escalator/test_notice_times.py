"""Times as the recipient reads them (the acknowledgement confirmation page's deadline and link
expiry): their zone from the roster, daylight saving time, the year only when it is another."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from riskrelay.escalator.links_api import recipient_zone
from riskrelay.escalator.notice import reader_time
from riskrelay.escalator.roster import Roster

pytestmark = pytest.mark.unit

NEW_YORK = ZoneInfo("America/New_York")
# The moment the reader looks at the page: fixed, so the year rule never depends on today.
NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "zone", "text"),
    [
        # Winter: New York is UTC-5 (EST).
        (datetime(2026, 12, 1, 19, 30, tzinfo=UTC), NEW_YORK, "Tue 1 Dec, 14:30 EST"),
        # Summer: UTC-4 (EDT); a single-digit day has no leading zero.
        (datetime(2026, 7, 3, 13, 5, tzinfo=UTC), NEW_YORK, "Fri 3 Jul, 09:05 EDT"),
        # The local date, not the UTC one: 02:00 UTC on the 2nd is still the 1st in New York.
        (datetime(2026, 12, 2, 2, 0, tzinfo=UTC), NEW_YORK, "Tue 1 Dec, 21:00 EST"),
        # Another year than the reader's: the year is said.
        (datetime(2027, 1, 1, 14, 0, tzinfo=UTC), NEW_YORK, "Fri 1 Jan 2027, 09:00 EST"),
        (datetime(2026, 12, 1, 19, 30, tzinfo=UTC), ZoneInfo("UTC"), "Tue 1 Dec, 19:30 UTC"),
        (
            datetime(2026, 12, 1, 19, 30, tzinfo=UTC),
            ZoneInfo("Europe/Berlin"),
            "Tue 1 Dec, 20:30 CET",
        ),
    ],
)
def test_reader_time_is_in_the_readers_zone(instant: datetime, zone: ZoneInfo, text: str) -> None:
    assert reader_time(instant, zone, NOW) == text


def test_the_year_is_the_readers_current_one_in_their_zone() -> None:
    # 03:00 UTC on 1 January 2027 is still 2026 in New York: for a reader there, a deadline in
    # December 2026 is this year's.
    new_year_utc = datetime(2027, 1, 1, 3, 0, tzinfo=UTC)
    deadline = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    assert reader_time(deadline, NEW_YORK, new_year_utc) == "Thu 31 Dec, 18:00 EST"
    assert reader_time(deadline, ZoneInfo("UTC"), new_year_utc) == "Thu 31 Dec 2026, 23:00 UTC"


def test_the_recipients_zone_comes_from_the_roster() -> None:
    roster = Roster.model_validate(
        {
            "calendars": {
                "new-york": {
                    "timezone": "America/New_York",
                    "business_hours": {"mon": ["09:00", "17:00"]},
                }
            },
            "people": {
                "nina": {
                    "name": "Nina York",
                    "email": "Nina.York@example.org",
                    "calendar": "new-york",
                },
                "kai": {"name": "Kai", "email": "kai@example.org", "time_zone": "Asia/Tokyo"},
            },
            "roles": {
                "team_lead": {"people": ["nina"]},
                "support_manager": {
                    "people": [
                        {
                            "name": "Inline",
                            "email": "inline@example.org",
                            "time_zone": "Europe/Paris",
                        }
                    ]
                },
            },
        }
    )
    assert recipient_zone(roster, "nina.york@example.org").key == "America/New_York"
    assert recipient_zone(roster, "kai@example.org").key == "Asia/Tokyo"
    assert recipient_zone(roster, "inline@example.org").key == "Europe/Paris"
    assert recipient_zone(roster, "stranger@example.org").key == "UTC"
