-- What each alert condition was last said to be (issue 13): an alert goes out when a condition
-- turns failing, a recovery when it clears, and nothing while it stays as it was.
CREATE TABLE og.alert_state (
    key         text PRIMARY KEY,
    failing     boolean NOT NULL,
    title       text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
