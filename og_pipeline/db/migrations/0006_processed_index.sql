-- Custom events are sent for recently processed webhook events; keep that look-up indexed as
-- the staging table grows.
CREATE INDEX webhook_events_processed_idx ON og.webhook_events (processed_at)
    WHERE status = 'processed';
