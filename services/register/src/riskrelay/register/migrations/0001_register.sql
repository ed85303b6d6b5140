-- The Risk Register (levels 3-5). One row per risk holds its current state: the columns map
-- one to one onto riskrelay.shared.events.RiskRegisterEntry (see riskrelay.register.store),
-- so the row is exactly what was last published on risk-registered.
CREATE TABLE risks (
    risk_id text PRIMARY KEY,
    version integer NOT NULL CHECK (version >= 1),
    title text NOT NULL,
    redacted_summary text NOT NULL,
    level smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
    category text NOT NULL CHECK (category IN ('data_security_privacy', 'product_safety',
        'service_disruption', 'compliance', 'reputation', 'operational')),
    status text NOT NULL CHECK (status IN ('identified', 'escalated', 'under_joint_assessment',
        'response_planned', 'mitigating', 'monitoring', 'closed', 'reopened')),
    owner text,
    first_reported_at timestamptz NOT NULL,
    last_reported_at timestamptz NOT NULL,
    ticket_count integer NOT NULL CHECK (ticket_count >= 0),
    distinct_customers integer NOT NULL CHECK (distinct_customers >= 0),
    customer_segments text[] NOT NULL DEFAULT '{}',
    products text[] NOT NULL DEFAULT '{}',
    indicators text[] NOT NULL DEFAULT '{}',
    policy_version text NOT NULL,
    likelihood smallint CHECK (likelihood BETWEEN 1 AND 5),
    impact smallint CHECK (impact BETWEEN 1 AND 5),
    inherent_score smallint CHECK (inherent_score BETWEEN 1 AND 25),
    residual_score smallint CHECK (residual_score BETWEEN 1 AND 25),
    treatment text CHECK (treatment IN ('accept', 'mitigate', 'avoid', 'transfer')),
    -- The mitigation plan is present as a whole or not at all (strategy is its mandatory part).
    mitigation_strategy text,
    mitigation_owner text,
    mitigation_target_date timestamptz,
    assessment text,
    communication_template text,
    resolution_verification text,
    prevention_measures text,
    next_review_at timestamptz,
    updated_at timestamptz NOT NULL,
    -- The entry's capped list (the contract keeps 1000); risk_tickets has every link.
    ticket_ids text[] NOT NULL DEFAULT '{}',
    -- Event time of the first version: immutable, so it orders cursor pagination stably.
    registered_at timestamptz NOT NULL,
    search tsvector GENERATED ALWAYS AS (
        to_tsvector('english', risk_id || ' ' || title || ' ' || redacted_summary)
    ) STORED,
    CHECK (mitigation_strategy IS NOT NULL
        OR (mitigation_owner IS NULL AND mitigation_target_date IS NULL)),
    CHECK (status <> 'closed' OR resolution_verification IS NOT NULL)
);

CREATE INDEX risks_page ON risks (registered_at DESC, risk_id DESC);
CREATE INDEX risks_level ON risks (level, registered_at DESC, risk_id DESC);
CREATE INDEX risks_status ON risks (status, registered_at DESC, risk_id DESC);
CREATE INDEX risks_category ON risks (category, registered_at DESC, risk_id DESC);
CREATE INDEX risks_reported ON risks (first_reported_at, last_reported_at);
CREATE INDEX risks_review_due ON risks (next_review_at) WHERE status <> 'closed';
CREATE INDEX risks_search ON risks USING gin (search);

-- Every ticket ever linked to a risk, in the order it was linked (link_id), with what linked it.
CREATE TABLE risk_tickets (
    risk_id text NOT NULL REFERENCES risks (risk_id),
    ticket_id text NOT NULL,
    link_id bigserial NOT NULL,
    linked_at timestamptz NOT NULL,
    cause_event_id text,
    PRIMARY KEY (risk_id, ticket_id)
);
CREATE INDEX risk_tickets_order ON risk_tickets (risk_id, link_id);
CREATE INDEX risk_tickets_ticket ON risk_tickets (ticket_id);

-- Append-only audit trail: one row per version, who (actor, role) or what (cause_event_id)
-- changed it, when (at: event time, or the API's clock), and each field's before and after.
CREATE TABLE risk_history (
    history_id bigserial PRIMARY KEY,
    risk_id text NOT NULL REFERENCES risks (risk_id),
    version integer NOT NULL,
    kind text NOT NULL,
    at timestamptz NOT NULL,
    actor text,
    role text,
    cause_event_id text,
    reason text,
    changes jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (risk_id, version)
);

CREATE FUNCTION risk_history_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'risk_history is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER risk_history_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON risk_history
    FOR EACH STATEMENT EXECUTE FUNCTION risk_history_is_append_only();

-- Escalation notices and acknowledgements that arrived before the classification that
-- registers their risk (the topics are independent, so the order between them is not fixed).
-- They are applied, in arrival order, when the risk is registered, then deleted.
CREATE TABLE pending_signals (
    position bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    risk_id text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('escalation_due', 'acknowledgement')),
    at timestamptz NOT NULL,
    payload jsonb NOT NULL
);
CREATE INDEX pending_signals_risk ON pending_signals (risk_id, position);
