-- Hub tokens: what a venue hub (`scanner hub`) presents to relay everything it holds for ONE event
-- (`/v1/sync?event=E&channel=relay`). A hub is the organizer's own hardware, trusted like the edge relay
-- for its event only. Stored as SHA-256 hex like device and edge tokens. Portable SQL.
CREATE TABLE hub_tokens (
    id          TEXT    PRIMARY KEY,
    event_id    BIGINT  NOT NULL REFERENCES events(id),
    name        TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX hub_tokens_event ON hub_tokens (event_id);
