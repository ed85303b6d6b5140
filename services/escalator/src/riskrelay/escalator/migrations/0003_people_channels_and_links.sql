-- E-mail and Microsoft Teams notifications to people, and one-click acknowledgement links.

-- What a person's notice says about the risk (category, counts, why it was flagged), kept from
-- its classification; escalation-due events carry only the title.
ALTER TABLE escalations ADD COLUMN details jsonb;

ALTER TABLE notifications DROP CONSTRAINT notifications_channel_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_channel_check
    CHECK (channel IN ('webhook', 'slack', 'pagerduty', 'email', 'teams'));
-- The person a notice is addressed to (their e-mail), when it goes to a person.
ALTER TABLE notifications ADD COLUMN recipient text;

-- Acknowledgements by link (from an e-mail or a Teams card) name the channel the link came from.
ALTER TABLE acknowledgements DROP CONSTRAINT acknowledgements_source_check;
ALTER TABLE acknowledgements ADD CONSTRAINT acknowledgements_source_check
    CHECK (source IN ('http', 'topic', 'link'));
ALTER TABLE acknowledgements ADD COLUMN channel text;

-- A link is usable once: its id (the signed `jti`) is inserted when it is redeemed.
CREATE TABLE ack_link_uses (
    link_id text PRIMARY KEY,
    escalation_id text NOT NULL,
    person text NOT NULL,
    decision text,
    channel text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('accepted', 'already_closed')),
    used_at timestamptz NOT NULL
);

-- Every refused link (expired, reused, tampered, another person's, unknown step), with who
-- presented it: the audit trail of links that did not work.
CREATE TABLE ack_link_refusals (
    id bigserial PRIMARY KEY,
    link_id text,
    escalation_id text,
    person text,
    presented_by text NOT NULL,
    reason text NOT NULL
        CHECK (reason IN ('expired', 'reused', 'tampered', 'wrong_person', 'unknown_step')),
    detail text NOT NULL,
    refused_at timestamptz NOT NULL
);
CREATE INDEX ack_link_refusals_by_escalation ON ack_link_refusals (escalation_id, id);
