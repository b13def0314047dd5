-- Custom events that were never sent get an outcome of their own (issue 9), so none is lost
-- without a trace and a poison event cannot stay due forever:
--   failed:  the webhook event could not be made into a custom event (reason in last_error);
--            deleting the row puts it back in line while it is still within the send window.
--   expired: not sent within the send window (3 days after processing), so never sent.
-- A row here, whatever its outcome, is what keeps an event from being sent (again).
ALTER TABLE og.ometria_events DROP CONSTRAINT ometria_events_outcome_check;
ALTER TABLE og.ometria_events ADD CONSTRAINT ometria_events_outcome_check
    CHECK (outcome IN ('accepted', 'rejected', 'failed', 'expired'));
ALTER TABLE og.ometria_events ADD COLUMN last_error text;
