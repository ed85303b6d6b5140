-- Several consumers dead-letter the same source record (intake and reporting both read
-- ticket-events, for one): each dead letter names the record it came from and the consumer
-- group that gave up on it (its dlq_source_partition, dlq_source_offset and dlq_consumer_group
-- headers), so the dashboard counts each source record once and shows per consumer as detail.
-- Dead letters recorded before this migration, or written without those headers, have NULLs
-- and count once each.
ALTER TABLE dead_letters
    ADD COLUMN source_partition integer,
    ADD COLUMN source_offset bigint,
    ADD COLUMN consumer_group text;
CREATE INDEX dead_letters_source_record ON dead_letters (source_topic, source_partition, source_offset);
