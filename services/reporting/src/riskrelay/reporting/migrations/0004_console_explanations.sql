-- Why a risk was flagged, for the console's risk page. Both tables keep only what intake and
-- the classifier publish already redacted (the redacted subject and summary, and each
-- detection's redacted sentence), never the upstream ticket text.

-- ticket-flagged: one row per flag, with its detections (indicator, rule id, the redacted sentence
-- that triggered it, confidence and, for the learned models, score, threshold, nearest examples
-- and model versions) as intake published them.
CREATE TABLE ticket_flag_details (
    event_id text PRIMARY KEY,
    ticket_id text NOT NULL,
    occurred_at timestamptz NOT NULL,
    redacted_subject text NOT NULL,
    detections jsonb NOT NULL
);
CREATE INDEX ticket_flag_details_ticket ON ticket_flag_details (ticket_id, occurred_at);

-- risk-classified: what each classification adds to risk_classifications (same event id): the
-- distinct customers, the redacted summary, the policy rules that fired with their
-- contributions, the evidence behind the decision and a person's override (who and why).
CREATE TABLE risk_explanations (
    event_id text PRIMARY KEY,
    risk_id text NOT NULL,
    classified_at timestamptz NOT NULL,
    distinct_customers integer NOT NULL,
    redacted_summary text NOT NULL,
    policy_version text NOT NULL,
    rules_fired jsonb NOT NULL,
    evidence jsonb NOT NULL,
    override jsonb
);
CREATE INDEX risk_explanations_risk ON risk_explanations (risk_id, classified_at);
