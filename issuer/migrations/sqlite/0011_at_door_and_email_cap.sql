-- Issue 11, selling: pay at the door is an organizer's choice per ticket type, and an event may cap the
-- tickets one email address can order. Portable SQL (SQLite and PostgreSQL). Numbered after the issue so
-- that migrations written at the same time by other changes do not collide with it.

-- Off by default: an at-door order is confirmed without any payment, so a ticket type that costs money
-- only allows it when the organizer says so. Existing ticket types are switched off as well.
ALTER TABLE ticket_types ADD COLUMN at_door_allowed BOOLEAN NOT NULL DEFAULT FALSE;

-- Most tickets one email address may hold for the event (pending, confirmed and payment_conflict orders
-- count); NULL = no cap.
ALTER TABLE events ADD COLUMN max_tickets_per_email BIGINT;

-- The address each order counts against: lower case, without a `+tag` in the local part (so that
-- `Ada+1@Example.org` and `ada@example.org` share one cap). Written by the order committer in the
-- order's own transaction; kept apart from `orders` so the customer's address stays as typed.
CREATE TABLE order_email_keys (
    order_id   TEXT    PRIMARY KEY REFERENCES orders(id),
    event_id   BIGINT  NOT NULL,
    email_key  TEXT    NOT NULL
);
CREATE INDEX order_email_keys_event_email ON order_email_keys (event_id, email_key);

-- Orders placed before this migration count under their lower-cased address.
INSERT INTO order_email_keys (order_id, event_id, email_key)
SELECT id, event_id, LOWER(customer_email) FROM orders;
