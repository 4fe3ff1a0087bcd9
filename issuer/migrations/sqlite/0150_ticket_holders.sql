-- Issue 15, orders and customers: a name per ticket, refunds of single tickets, the "lost your tickets?"
-- rate limit. Portable SQL (SQLite and PostgreSQL). Numbered apart from the other issue-15 migrations
-- (0130 staff, 0140 catalog) written at the same time.

-- The name the buyer gave each ticket of a line, as a JSON array of strings (one per ticket, in order);
-- NULL (orders from before this migration, or no names given) = every ticket carries the buyer's name.
-- Kept with the line so that an order paid later (hosted checkout) is issued with the names given at
-- order time.
ALTER TABLE order_items ADD COLUMN holder_names TEXT;

-- What one ticket of the line was charged (its type's price and its add-ons' prices at order time), so a
-- single ticket's refund gives back what was paid for it even after the organizer changed a price. NULL
-- for orders from before this migration: the catalog's prices are used then.
ALTER TABLE order_items ADD COLUMN unit_cents BIGINT;

-- Refunds were one per order (always of the whole payment). A single ticket can now be refunded on its
-- own: `ticket_id` names it ('' = the whole order, or what is left of it), `amount_cents` is the amount
-- asked back from the provider (NULL = everything not yet refunded). One refund per (order, ticket).
-- SQLite cannot drop a UNIQUE constraint, so the table is rebuilt with its rows.
CREATE TABLE refunds_v2 (
    id               INTEGER PRIMARY KEY,
    order_id         TEXT    NOT NULL REFERENCES orders(id),
    ticket_id        TEXT    NOT NULL DEFAULT '',
    amount_cents     BIGINT,
    payment_method   TEXT    NOT NULL,
    payment_intent   TEXT    NOT NULL,
    reason           TEXT    NOT NULL,   -- admin_refund, late_payment, ticket_refund
    status           TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    last_error       TEXT,
    provider_ref     TEXT,
    created_at       BIGINT  NOT NULL,
    done_at          BIGINT,
    UNIQUE (order_id, ticket_id)
);
INSERT INTO refunds_v2 (id, order_id, ticket_id, amount_cents, payment_method, payment_intent, reason, status,
                        idempotency_key, attempts, next_attempt_at, last_error, provider_ref, created_at, done_at)
SELECT id, order_id, '', NULL, payment_method, payment_intent, reason, status, idempotency_key, attempts,
       next_attempt_at, last_error, provider_ref, created_at, done_at
FROM refunds;
DROP TABLE refunds;
ALTER TABLE refunds_v2 RENAME TO refunds;
CREATE INDEX refunds_due ON refunds (status, next_attempt_at);

-- "Lost your tickets?" requests, kept only as long as the rate limit looks back: one row per request
-- under the hash of the address asked for and one under the hash of the client's IP address (no address
-- or IP is stored in clear). Rows of any address count alike, whether it has orders or not.
CREATE TABLE lookup_requests (
    id          INTEGER PRIMARY KEY,
    key_hash    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX lookup_requests_key ON lookup_requests (key_hash, created_at);
