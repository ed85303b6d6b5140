-- Cluster members get their own rows: a cluster row used to carry every member in its JSON, so
-- each report joining a big incident rewrote the whole list (up to max_members, ~150 KB). Now a
-- join inserts one member row and rewrites only the small cluster header.
CREATE TABLE cluster_members (
    cluster_id text NOT NULL,
    ticket_id text NOT NULL,
    product_key text NOT NULL,
    customer_id text NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (cluster_id, ticket_id)
);
CREATE INDEX cluster_members_by_product ON cluster_members (product_key);

INSERT INTO cluster_members (cluster_id, ticket_id, product_key, customer_id, occurred_at)
SELECT c.cluster_id, m.ticket_id, c.product_key, m.customer_id, m.occurred_at
FROM clusters c,
     jsonb_to_recordset(c.state -> 'members') AS m (ticket_id text, customer_id text, occurred_at timestamptz)
ON CONFLICT DO NOTHING;

UPDATE clusters SET state = state - 'members';
