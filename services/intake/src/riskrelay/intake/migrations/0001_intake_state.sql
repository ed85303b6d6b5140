-- Intake's shared state. Every instance reads and writes it under a per-product advisory lock,
-- so two instances never split a cluster or double-count a rate.

-- One row per similar-report cluster (riskrelay.intake.clustering.Cluster as JSON).
CREATE TABLE clusters (
    cluster_id text PRIMARY KEY,
    product_key text NOT NULL,
    last_seen_at timestamptz NOT NULL,
    surging boolean NOT NULL DEFAULT false,
    size integer NOT NULL,
    distinct_customers integer NOT NULL,
    state jsonb NOT NULL
);
CREATE INDEX clusters_by_product ON clusters (product_key, last_seen_at);

-- Bumped on every change to a product's clusters: an instance whose cached copy carries an
-- older version reloads it.
CREATE TABLE cluster_products (
    product_key text PRIMARY KEY,
    version bigint NOT NULL
);

-- Ticket-rate baselines per product and channel (riskrelay.intake.patterns.RateState as JSON).
CREATE TABLE rate_baselines (
    rate_key text PRIMARY KEY,
    product_key text NOT NULL,
    state jsonb NOT NULL
);

-- What intake concluded about each ticket it has seen (redacted), so a cluster that surges
-- later can flag its earlier tickets and follow-ups are compared with what was already flagged.
CREATE TABLE tickets (
    ticket_id text PRIMARY KEY,
    product_key text NOT NULL,
    cluster_id text,
    assessment jsonb NOT NULL,
    known_indicators text[] NOT NULL DEFAULT '{}',
    risk_flag_level smallint,
    first_seen_at timestamptz NOT NULL,
    last_event_at timestamptz NOT NULL
);
CREATE INDEX tickets_by_last_event ON tickets (last_event_at);

-- Processed ticket events per hour of event time, channel and product, flagged or not: the
-- denominator of flag rates.
CREATE TABLE ticket_counts (
    hour timestamptz NOT NULL,
    channel text NOT NULL,
    product text NOT NULL,
    flagged boolean NOT NULL,
    events bigint NOT NULL,
    PRIMARY KEY (hour, channel, product, flagged)
);
