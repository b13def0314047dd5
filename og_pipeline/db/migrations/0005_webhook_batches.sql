-- Webhook processing: the sensor claims ready events into a batch, and a run processes exactly
-- that batch (run key = batch id, so a batch never runs twice). Claiming instead of a sequence
-- cursor means an event whose transaction commits late is simply claimed by a later tick.
CREATE TABLE og.webhook_batches (
    id          bigserial PRIMARY KEY,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    events      integer NOT NULL
);
ALTER TABLE og.webhook_events ADD COLUMN batch_id bigint REFERENCES og.webhook_batches (id);
CREATE INDEX webhook_events_batch_idx ON og.webhook_events (batch_id) WHERE status = 'pending';

-- Custom events sent to Ometria, by their Ometria id (og-<Ordergroove event id>), with the
-- outcome: an event is sent only if it is not here, and a re-send after a crash between the push
-- and this row reuses the same id, so Ometria upserts it instead of starting a campaign twice.
CREATE TABLE og.ometria_events (
    event_id          text PRIMARY KEY,
    webhook_event_id  text NOT NULL,
    event_type        text NOT NULL,
    customer_id       text,
    properties        jsonb NOT NULL,
    request_id        text,
    outcome           text NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
    sent_at           timestamptz NOT NULL DEFAULT now()
);
