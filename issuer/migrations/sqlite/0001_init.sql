-- Issuer schema. Types and statements are kept portable to PostgreSQL (BIGINT, TEXT, ON CONFLICT,
-- RETURNING); only the id columns rely on SQLite's INTEGER PRIMARY KEY auto-assignment, which the
-- PostgreSQL migration set expresses as BIGSERIAL / GENERATED ALWAYS AS IDENTITY.

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    venue       TEXT    NOT NULL,
    starts_at   BIGINT  NOT NULL,
    ends_at     BIGINT  NOT NULL,
    timezone    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE ticket_types (
    id            INTEGER PRIMARY KEY,
    event_id      BIGINT  NOT NULL REFERENCES events(id),
    idx           INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    price_cents   BIGINT  NOT NULL,
    currency      TEXT    NOT NULL,
    capacity      BIGINT  NOT NULL,
    reserved      BIGINT  NOT NULL DEFAULT 0,
    sales_start   BIGINT,
    sales_end     BIGINT,
    reentry       BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (event_id, idx),
    CHECK (reserved >= 0 AND reserved <= capacity)
);

CREATE TABLE addons (
    id            INTEGER PRIMARY KEY,
    event_id      BIGINT  NOT NULL REFERENCES events(id),
    idx           INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    price_cents   BIGINT  NOT NULL,
    capacity      BIGINT  NOT NULL,
    reserved      BIGINT  NOT NULL DEFAULT 0,
    UNIQUE (event_id, idx),
    CHECK (reserved >= 0 AND reserved <= capacity)
);

-- status: pending (unpaid, holding seats until hold_expires_at), confirmed (paid or free / pay at door:
-- tickets issued), expired (hold released), cancelled, refunded, payment_conflict (paid after its hold
-- expired and the seats were gone: needs a manual refund).
CREATE TABLE orders (
    id               TEXT    PRIMARY KEY,
    event_id         BIGINT  NOT NULL REFERENCES events(id),
    token_hash       TEXT    NOT NULL,
    customer_name    TEXT    NOT NULL,
    customer_email   TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    payment_method   TEXT    NOT NULL,
    payment_ref      TEXT,
    payment_intent   TEXT,
    total_cents      BIGINT  NOT NULL,
    currency         TEXT    NOT NULL,
    hold_expires_at  BIGINT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX orders_pending_hold ON orders (status, hold_expires_at);
CREATE INDEX orders_payment_ref ON orders (payment_ref);

CREATE TABLE order_items (
    id              INTEGER PRIMARY KEY,
    order_id        TEXT    NOT NULL REFERENCES orders(id),
    ticket_type_id  BIGINT  NOT NULL REFERENCES ticket_types(id),
    quantity        BIGINT  NOT NULL,
    addon_mask      BIGINT  NOT NULL
);
CREATE INDEX order_items_order ON order_items (order_id);

CREATE TABLE tickets (
    ticket_id     TEXT    PRIMARY KEY,   -- hex of the 96-bit secret id
    order_id      TEXT    NOT NULL REFERENCES orders(id),
    seq           INTEGER NOT NULL,      -- position within the order, 0-based
    event_id      BIGINT  NOT NULL,
    ticket_type   INTEGER NOT NULL,      -- per-event index
    addon_mask    BIGINT  NOT NULL,
    holder_name   TEXT    NOT NULL,
    key_id        INTEGER NOT NULL,
    qr_text       TEXT    NOT NULL,
    revoked       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL,
    UNIQUE (order_id, seq)
);
CREATE INDEX tickets_event ON tickets (event_id);

-- The transactional outbox. status: pending, sent, dead.
CREATE TABLE email_jobs (
    id               INTEGER PRIMARY KEY,
    order_id         TEXT    NOT NULL REFERENCES orders(id),
    kind             TEXT    NOT NULL,
    message_id       TEXT    NOT NULL UNIQUE,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,   -- Unix milliseconds
    last_error       TEXT,
    created_at       BIGINT  NOT NULL,
    sent_at          BIGINT
);
CREATE INDEX email_jobs_due ON email_jobs (status, next_attempt_at);

-- The signed revocation list, persisted whole (it is small) and reloaded at start.
CREATE TABLE revocation_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    version   BIGINT  NOT NULL,
    list_json TEXT    NOT NULL
);

CREATE TABLE devices (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);

-- Stripe events already processed (webhook idempotency).
CREATE TABLE stripe_events (
    id           TEXT   PRIMARY KEY,
    received_at  BIGINT NOT NULL
);
