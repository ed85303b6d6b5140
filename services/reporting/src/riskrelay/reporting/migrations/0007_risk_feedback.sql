-- risk-feedback: every person's judgement of a detection (not a risk, wrong level, missed risk),
-- for the monthly report's precision and misses as reviewers judged them. Only ids, the kind,
-- levels, indicators, who and when are kept: the redacted texts the event carries are intake's
-- to learn from, and the free-text note is not a figure.
CREATE TABLE risk_feedback (
    event_id text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('not_a_risk', 'wrong_level', 'missed_risk')),
    ticket_id text,
    risk_id text,
    given_by text NOT NULL,
    role text NOT NULL,
    given_at timestamptz NOT NULL,
    level smallint,
    correct_level smallint,
    indicators text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX risk_feedback_given_at ON risk_feedback (given_at);
CREATE INDEX risk_feedback_ticket ON risk_feedback (ticket_id) WHERE ticket_id IS NOT NULL;
CREATE INDEX risk_feedback_risk ON risk_feedback (risk_id) WHERE risk_id IS NOT NULL;
