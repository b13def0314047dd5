-- og-pipeline's tables. Timestamps are UTC (timestamptz); Ordergroove's naive local times are
-- converted on the way in. `record` keeps the source record as received, for audit and replay.

-- Raw Ordergroove records: the latest version seen, from the REST sync or a webhook. An upsert
-- replaces a row only with a version whose `updated_at` is not older, so reruns cannot regress.
CREATE TABLE og.subscriptions (
    public_id     text PRIMARY KEY,
    customer_id   text NOT NULL,
    product_id    text,
    live          boolean NOT NULL,
    cancelled_at  timestamptz,
    created_at    timestamptz,
    updated_at    timestamptz NOT NULL,
    record        jsonb NOT NULL,
    source        text NOT NULL CHECK (source IN ('rest', 'webhook')),
    loaded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_customer_idx ON og.subscriptions (customer_id);

CREATE TABLE og.customers (
    merchant_user_id text PRIMARY KEY,
    email            text,
    live             boolean,
    created_at       timestamptz,
    updated_at       timestamptz NOT NULL,
    record           jsonb NOT NULL,
    source           text NOT NULL CHECK (source IN ('rest', 'webhook')),
    loaded_at        timestamptz NOT NULL DEFAULT now()
);

-- Orders and their lines. Ordergroove hard-deletes future orders without a tombstone; only the
-- order.delete / item.remove webhooks tell, and they set deleted_at.
CREATE TABLE og.orders (
    public_id    text PRIMARY KEY,
    customer_id  text NOT NULL,
    status       smallint NOT NULL,
    place        date,
    total        numeric(14, 2),
    created_at   timestamptz,
    updated_at   timestamptz NOT NULL,
    deleted_at   timestamptz,
    record       jsonb NOT NULL,
    source       text NOT NULL CHECK (source IN ('rest', 'webhook')),
    loaded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_upcoming_customer_idx ON og.orders (customer_id) WHERE status = 1;

CREATE TABLE og.items (
    public_id        text PRIMARY KEY,
    order_id         text NOT NULL,
    subscription_id  text,
    product_id       text,
    quantity         integer,
    updated_at       timestamptz NOT NULL,
    deleted_at       timestamptz,
    record           jsonb NOT NULL,
    source           text NOT NULL CHECK (source IN ('rest', 'webhook')),
    loaded_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX items_order_idx ON og.items (order_id);
CREATE INDEX items_subscription_idx ON og.items (subscription_id);

-- Products: full refresh (the API has no incremental filter for them).
CREATE TABLE og.products (
    external_product_id text PRIMARY KEY,
    name                text,
    image_url           text,
    detail_url          text,
    live                boolean,
    record              jsonb NOT NULL,
    refreshed_at        timestamptz NOT NULL DEFAULT now()
);

-- Webhook staging: every authentic request, committed before the receiver answers.
CREATE TABLE og.webhook_events (
    seq              bigserial PRIMARY KEY,
    event_id         text UNIQUE,            -- NULL when the body had no usable id (status invalid)
    event_type       text,
    og_created_at    timestamptz,
    received_at      timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processed', 'ignored', 'invalid', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    next_attempt_at  timestamptz,
    processed_at     timestamptz,
    body             bytea NOT NULL,
    payload          jsonb
);
CREATE INDEX webhook_events_pending_idx ON og.webhook_events (seq) WHERE status = 'pending';

-- Derived per-contact stats: what the contact's Ometria custom fields should say.
CREATE TABLE og.contact_stats (
    customer_id           text PRIMARY KEY,
    email                 text,
    active_subscriptions  integer NOT NULL CHECK (active_subscriptions >= 0),
    total_subscriptions   integer NOT NULL CHECK (total_subscriptions >= 0),
    status                text NOT NULL CHECK (status IN ('active', 'inactive')),
    next_order_date       date,
    fields_hash           text NOT NULL,
    computed_at           timestamptz NOT NULL DEFAULT now()
);

-- What Ometria last accepted for each contact: the push sends only contacts whose hash differs.
CREATE TABLE og.ometria_contacts (
    customer_id  text PRIMARY KEY,
    contact_id   text NOT NULL,
    fields       jsonb NOT NULL,
    fields_hash  text NOT NULL,
    request_id   text,
    accepted_at  timestamptz NOT NULL
);

-- Audit: one row per record per push attempt. No e-mail addresses here: fields and hashes only.
CREATE TABLE og.ometria_push_audit (
    id           bigserial PRIMARY KEY,
    record_type  text NOT NULL CHECK (record_type IN ('contact', 'custom_event')),
    record_id    text NOT NULL,
    customer_id  text,
    fields       jsonb,
    fields_hash  text,
    request_id   text,
    outcome      text NOT NULL,
    error        text,
    run_id       text,
    sent_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ometria_push_audit_customer_idx ON og.ometria_push_audit (customer_id, sent_at);
CREATE INDEX ometria_push_audit_record_idx ON og.ometria_push_audit (record_id);
