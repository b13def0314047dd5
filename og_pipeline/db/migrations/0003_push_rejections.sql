-- A contact Ometria refused keeps the refused hash, so the same fields are not re-sent every hour
-- (a changed contact is sent again); accepted fields may be absent for a never-accepted contact.
ALTER TABLE og.ometria_contacts
    ALTER COLUMN fields DROP NOT NULL,
    ALTER COLUMN fields_hash DROP NOT NULL,
    ALTER COLUMN accepted_at DROP NOT NULL,
    ADD COLUMN rejected_hash text,
    ADD COLUMN rejected_at timestamptz,
    ADD COLUMN last_error text;

-- Asynchronous validation errors seen at /v2/push/_errors, once each (the endpoint repeats the
-- latest 100 on every call).
CREATE TABLE og.ometria_errors (
    error_hash     text PRIMARY KEY,
    error_message  text NOT NULL,
    error_path     text,
    record_id      text,
    first_seen_at  timestamptz NOT NULL DEFAULT now()
);
