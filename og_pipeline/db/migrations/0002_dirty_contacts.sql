-- Contacts whose raw records changed since their stats were last computed. Every upsert that
-- changes a subscription, customer, order or item marks its customer here; the stats asset
-- recomputes exactly these contacts and clears them in the same transaction.
CREATE TABLE og.dirty_contacts (
    customer_id  text PRIMARY KEY,
    marked_at    timestamptz NOT NULL DEFAULT now()
);
