-- Similar reports by meaning. A cluster is now a centroid of sentence-encoder vectors of problem
-- reports (riskrelay.intake.clustering), not MinHash exemplars of every ticket: a cluster stored
-- before has no vector to compare with, so those clusters are dropped (their tickets keep their
-- memories, stay known and are never re-flagged for an old surge), and the assessments drop the
-- fingerprint they carried.
DELETE FROM cluster_members;
DELETE FROM clusters;
UPDATE tickets SET cluster_id = NULL, assessment = assessment - 'fingerprint'
WHERE cluster_id IS NOT NULL OR assessment ? 'fingerprint';

-- The mean of the members' vectors as little-endian Q15 int16 values (768 bytes for 384
-- dimensions), beside the JSON header rather than in it, so the row stays under the TOAST
-- threshold and is never compressed.
ALTER TABLE clusters ADD COLUMN centroid bytea NOT NULL;

-- Recurring problem topics per product (riskrelay.intake.clustering.Topic as JSON, its centroid
-- as bytes): each new cluster is matched to one and its surge judged against the topic's usual
-- busiest window, kept for days after the clusters themselves are pruned.
CREATE TABLE cluster_topics (
    topic_id text PRIMARY KEY,
    product_key text NOT NULL,
    last_seen_at timestamptz NOT NULL,
    centroid bytea NOT NULL,
    state jsonb NOT NULL
);
CREATE INDEX cluster_topics_by_product ON cluster_topics (product_key);

-- Every instance's cached cluster index is now stale.
UPDATE cluster_products SET version = version + 1;
