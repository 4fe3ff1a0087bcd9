-- As migrations/sqlite/0011: pay at the door per ticket type, the per-address ticket cap.
ALTER TABLE ticket_types ADD COLUMN at_door_allowed BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE events ADD COLUMN max_tickets_per_email BIGINT;

CREATE TABLE order_email_keys (
    order_id   TEXT    PRIMARY KEY REFERENCES orders(id),
    event_id   BIGINT  NOT NULL,
    email_key  TEXT    NOT NULL
);
CREATE INDEX order_email_keys_event_email ON order_email_keys (event_id, email_key);
