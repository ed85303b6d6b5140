"""The Monthly Risk Report's reviewer judgement: precision and misses as the people who act on
risks judged them, from their feedback (the protocol's near-miss reporting, by people).

Pure: the rows read by :func:`riskrelay.reporting.feedback_store.feedback_inputs` in, the
report's section out.
"""

from __future__ import annotations

from riskrelay.reporting.model import FeedbackInputs, MissedRiskItem, ReviewerJudgement
from riskrelay.reporting.stats import wilson_interval

METHOD = (
    "Precision as judged by reviewers: of the tickets first flagged in the month, the share no"
    " one marked 'not a risk' (on the ticket or on its whole risk) by the report's time, with"
    " Wilson's 95% interval. A flag nobody reviewed counts as right, so with few reviewed"
    " tickets this is an upper bound. Missed risks are tickets people reported as a risk the"
    " detector did not flag, during the month; the missed share is missed / (missed + flags"
    " judged right)."
)


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def reviewer_judgement(inputs: FeedbackInputs) -> ReviewerJudgement:
    judged_right = inputs.flagged - inputs.not_a_risk
    interval = wilson_interval(judged_right, inputs.flagged)
    found = judged_right + inputs.missed_total
    return ReviewerJudgement(
        flagged_tickets=inputs.flagged,
        reviewed_tickets=inputs.reviewed,
        marked_not_a_risk=inputs.not_a_risk,
        precision=_round(judged_right / inputs.flagged) if inputs.flagged else None,
        precision_ci_low=_round(interval.low) if interval else None,
        precision_ci_high=_round(interval.high) if interval else None,
        wrong_level=inputs.wrong_level,
        level_too_high=inputs.level_too_high,
        level_too_low=inputs.level_too_low,
        missed_risks=inputs.missed_total,
        missed_share=_round(inputs.missed_total / found) if found else None,
        shown=len(inputs.missed),
        missed=[
            MissedRiskItem(
                ticket_id=row.ticket_id,
                indicator=row.indicator,
                reported_at=row.reported_at,
                role=row.role,
            )
            for row in inputs.missed
        ],
        method=METHOD,
    )
