-- Ids of input events whose effects are committed; written in the same transaction as the
-- effects, so a redelivered event is recognised and skipped.
CREATE TABLE processed_events (
    event_id text PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
