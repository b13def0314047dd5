-- A webhook batch records when a run started it (issue 9). The run holds the batch's advisory
-- lock from that moment until its connection closes, so a started batch whose lock is free and
-- whose events are still pending belongs to a run that died: it is claimed again at once,
-- instead of after the 15 minutes that only a batch no run ever started must wait.
ALTER TABLE og.webhook_batches ADD COLUMN started_at timestamptz;
