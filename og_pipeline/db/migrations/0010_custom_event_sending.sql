-- Custom events are sent at most once (issue 9), without relying on Ometria to de-duplicate ids
-- (its documentation does not say it does):
--   sending:     recorded and committed before the push; the outcome replaces it after.
--   unconfirmed: Ometria may or may not have it, and it is never sent again: the sender died
--                between the push and its record, or Ometria refused some of the batch without
--                naming which. last_error says which case.
ALTER TABLE og.ometria_events DROP CONSTRAINT ometria_events_outcome_check;
ALTER TABLE og.ometria_events ADD CONSTRAINT ometria_events_outcome_check
    CHECK (outcome IN ('sending', 'accepted', 'rejected', 'unconfirmed', 'failed', 'expired'));
