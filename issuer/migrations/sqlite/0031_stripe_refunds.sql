-- Issue 11, Stripe: refunds are recorded before the payment provider is asked, so a crash between the
-- two never loses (or doubles) a refund. Portable SQL (SQLite and PostgreSQL). Numbered well apart from
-- the other issue-11 migrations written at the same time, so the versions do not collide.

-- One refund per order (refunds are always of the whole payment). status: pending (owed; the retry
-- worker calls the provider), succeeded, failed (the provider refused it for good: needs a person).
-- idempotency_key is sent as `Idempotency-Key` and reused by every retry of the same call; it is only
-- replaced after a provider 5xx, because Stripe saves and replays a 5xx for the key it was sent with.
CREATE TABLE refunds (
    id               INTEGER PRIMARY KEY,
    order_id         TEXT    NOT NULL UNIQUE REFERENCES orders(id),
    payment_method   TEXT    NOT NULL,
    payment_intent   TEXT    NOT NULL,
    reason           TEXT    NOT NULL,   -- admin_refund, late_payment
    status           TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,   -- Unix milliseconds; also the lease of an attempt in flight
    last_error       TEXT,
    provider_ref     TEXT,               -- Stripe's refund id (re_...)
    created_at       BIGINT  NOT NULL,
    done_at          BIGINT
);
CREATE INDEX refunds_due ON refunds (status, next_attempt_at);

-- charge.refunded and charge.dispute.created name the payment intent, not the order.
CREATE INDEX orders_payment_intent ON orders (payment_intent);
