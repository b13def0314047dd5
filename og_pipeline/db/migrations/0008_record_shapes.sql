-- Records as Ordergroove documents them (issue 8).

-- The latest instant a version's naive timestamp can mean, when it can mean two (the repeated
-- hour of a fall-back, the skipped hour of a spring-forward): a version replaces the stored one
-- when this (or updated_at, when NULL) is not older than the stored updated_at, so the current
-- state read from REST is never refused because the ambiguous hour compared the wrong way.
ALTER TABLE og.subscriptions ADD COLUMN updated_at_latest timestamptz;
ALTER TABLE og.customers ADD COLUMN updated_at_latest timestamptz;
ALTER TABLE og.orders ADD COLUMN updated_at_latest timestamptz;
ALTER TABLE og.items ADD COLUMN updated_at_latest timestamptz;

-- Records the sync or a webhook could not read, set aside with the reason; the walk goes on.
-- `identity` is 'id:<record id>' or, for a record without a readable id, 'sha256:<digest of the
-- kept copy>'. `record` is the record without personal data. A row leaves when a record with the
-- same id is read correctly.
CREATE TABLE og.rejected_records (
    resource    text NOT NULL,
    identity    text NOT NULL,
    record_id   text,
    source      text NOT NULL CHECK (source IN ('rest', 'webhook')),
    reason      text NOT NULL,
    record      jsonb NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    times_seen  integer NOT NULL DEFAULT 1,
    PRIMARY KEY (resource, identity)
);
CREATE INDEX rejected_records_id_idx ON og.rejected_records (resource, record_id)
    WHERE record_id IS NOT NULL;
