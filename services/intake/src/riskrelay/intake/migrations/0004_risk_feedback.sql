-- People's feedback on detections (risk-feedback), kept as labelled examples for the next
-- model: `riskrelay train --with-feedback` reads this table and turns each row into examples
-- (riskrelay.intake.feedback). Only redacted text is stored: the texts the console took from
-- what intake and the classifier published, and the ticket's redacted subject and summary from
-- intake's own memory of it (tickets.assessment).
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
    indicators text[] NOT NULL,
    -- [{"text", "source", "indicator"}]: riskrelay.shared.events.FeedbackText as JSON.
    texts jsonb NOT NULL,
    note text
);
CREATE INDEX risk_feedback_given_at ON risk_feedback (given_at);
