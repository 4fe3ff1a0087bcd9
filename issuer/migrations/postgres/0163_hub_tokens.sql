-- As migrations/sqlite/0163: venue hub tokens, one event each.
CREATE TABLE hub_tokens (
    id          TEXT    PRIMARY KEY,
    event_id    BIGINT  NOT NULL REFERENCES events(id),
    name        TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX hub_tokens_event ON hub_tokens (event_id);
