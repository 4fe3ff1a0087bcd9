-- As migrations/sqlite/0002: device tokens scoped to one event; the edge Worker's read-only tokens.
ALTER TABLE devices ADD COLUMN event_id BIGINT;

CREATE TABLE edge_tokens (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);
