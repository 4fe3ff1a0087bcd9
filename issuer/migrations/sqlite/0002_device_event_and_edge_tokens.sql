-- Device tokens are scoped to one event, and the edge Worker gets a read-only token of its own.
-- Portable SQL (SQLite and PostgreSQL).

-- The event a device scans for. Devices created before this migration have none: they are refused
-- (403, "create a new device for the event") and left out of the edge's device list. They stay listed
-- in the admin API so the organizer can see and revoke them.
ALTER TABLE devices ADD COLUMN event_id BIGINT;

-- Edge tokens: what the edge Worker presents to the issuer (`ISSUER_TOKEN`). Read-only: the signed
-- revocation list and the list of active device-token hashes, nothing else. Stored as SHA-256 hex like
-- device tokens.
CREATE TABLE edge_tokens (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);
