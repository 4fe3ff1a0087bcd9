-- Issue 12, at the door: each event's gate rules (check-in lists), as scanner-core's gate rules JSON
-- (`offline-tickets/gate-rules/v1`). Portable SQL (SQLite and PostgreSQL). Numbered after the issue and
-- apart from other migrations written at the same time, so the versions do not collide.
--
-- One row per event that has rules; an event without a row has no gate rules (every gate admits every
-- ticket). The ticket type and add-on names in the JSON are refreshed from the catalog when served.
CREATE TABLE gate_rules (
    event_id    BIGINT  PRIMARY KEY REFERENCES events(id),
    rules_json  TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL
);
