-- As migrations/sqlite/0121: each event's gate rules.
CREATE TABLE gate_rules (
    event_id    BIGINT  PRIMARY KEY REFERENCES events(id),
    rules_json  TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL
);
