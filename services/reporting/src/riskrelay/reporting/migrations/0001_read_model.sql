-- Reporting's read model: one table per fact the reports aggregate, filled from every topic.
-- Idempotent by construction: rows keyed by event id (or by a natural key with LEAST/GREATEST
-- upserts), and every applied event id is claimed in processed_events in the same transaction.
-- Raw upstream ticket events may contain personal data: only ids, channel, product and times
-- are kept from them, never text.

-- ticket-events: every upstream ticket once (the denominator of the flag rate per channel).
CREATE TABLE tickets (
    ticket_id text PRIMARY KEY,
    channel text NOT NULL,
    product text NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_event_at timestamptz NOT NULL,
    closed_at timestamptz
);
CREATE INDEX tickets_first_seen_at ON tickets (first_seen_at) INCLUDE (channel);

-- ticket-flagged: every flagged ticket once, with its first flag (a ticket counts in the period
-- of its first flag) and its latest flag (activity).
CREATE TABLE flagged_tickets (
    ticket_id text PRIMARY KEY,
    first_flagged_at timestamptz NOT NULL,
    last_flagged_at timestamptz NOT NULL,
    channel text NOT NULL,
    product text NOT NULL,
    customer_segment text NOT NULL,
    cluster_id text
);
CREATE INDEX flagged_tickets_first_flagged_at ON flagged_tickets (first_flagged_at);
CREATE INDEX flagged_tickets_cluster ON flagged_tickets (cluster_id, first_flagged_at)
    WHERE cluster_id IS NOT NULL;

-- Intake's similar-report clusters, as last reported.
CREATE TABLE clusters (
    cluster_id text PRIMARY KEY,
    size integer NOT NULL,
    distinct_customers integer NOT NULL,
    surging boolean NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_flagged_at timestamptz NOT NULL,
    product text NOT NULL
);
CREATE INDEX clusters_last_flagged_at ON clusters (last_flagged_at);

-- risk-classified: the full history of levels and categories of every risk.
CREATE TABLE risk_classifications (
    event_id text PRIMARY KEY,
    risk_id text NOT NULL,
    level smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
    previous_level smallint,
    category text NOT NULL,
    cluster_id text,
    title text NOT NULL,
    ticket_count integer NOT NULL,
    first_reported_at timestamptz NOT NULL,
    flagged_at timestamptz NOT NULL,
    classified_at timestamptz NOT NULL,
    overridden boolean NOT NULL
);
CREATE INDEX risk_classifications_risk ON risk_classifications (risk_id, classified_at);
CREATE INDEX risk_classifications_classified_at ON risk_classifications (classified_at);

-- Which risk a ticket belongs to: from the ticket lists of risk-classified (deterministically
-- the smallest risk id if a ticket was ever listed under two) ...
CREATE TABLE ticket_risks (
    ticket_id text PRIMARY KEY,
    risk_id text NOT NULL
);
CREATE INDEX ticket_risks_risk ON ticket_risks (risk_id);
-- ... and, for tickets that joined a risk without a new classification, through its cluster.
CREATE TABLE cluster_risks (
    cluster_id text PRIMARY KEY,
    risk_id text NOT NULL
);
CREATE INDEX cluster_risks_risk ON cluster_risks (risk_id);

-- escalation-due: every notice (first, reminders, warnings, breaches, weekly reviews).
CREATE TABLE escalation_notices (
    event_id text PRIMARY KEY,
    escalation_id text NOT NULL,
    risk_id text NOT NULL,
    level smallint NOT NULL,
    step integer NOT NULL,
    target_role text NOT NULL,
    reason text NOT NULL,
    due_at timestamptz NOT NULL,
    ack_due_at timestamptz,
    timeframe_due_at timestamptz,
    attempt integer NOT NULL
);
CREATE INDEX escalation_notices_escalation ON escalation_notices (escalation_id, due_at);
CREATE INDEX escalation_notices_due_at ON escalation_notices (due_at);
CREATE INDEX escalation_notices_risk ON escalation_notices (risk_id);

-- escalation-acks: every acknowledgement (and Level 3 review decision).
CREATE TABLE escalation_acks (
    event_id text PRIMARY KEY,
    escalation_id text NOT NULL,
    risk_id text NOT NULL,
    role text NOT NULL,
    acknowledged_by text NOT NULL,
    acknowledged_at timestamptz NOT NULL,
    decision text
);
CREATE INDEX escalation_acks_escalation ON escalation_acks (escalation_id, acknowledged_at);
CREATE INDEX escalation_acks_risk ON escalation_acks (risk_id);

-- risk-registered: every version of every Risk Register entry reporting has seen (the topic is
-- compacted, so this table is the only place the lifecycle history survives).
CREATE TABLE register_versions (
    risk_id text NOT NULL,
    version integer NOT NULL,
    event_id text NOT NULL,
    level smallint NOT NULL,
    category text NOT NULL,
    status text NOT NULL,
    title text NOT NULL,
    owner text,
    treatment text,
    first_reported_at timestamptz NOT NULL,
    ticket_count integer NOT NULL,
    next_review_at timestamptz,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (risk_id, version)
);
CREATE INDEX register_versions_status ON register_versions (status, updated_at);

-- <topic>.dlq: one row per dead letter (no payload and no error text: both may hold personal data).
CREATE TABLE dead_letters (
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    source_topic text NOT NULL,
    failed_at timestamptz,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX dead_letters_source_topic ON dead_letters (source_topic);
