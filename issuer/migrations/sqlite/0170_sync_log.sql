-- The redemption sync log (`/v1/sync`) in the store, so that every issuer instance on one database serves
-- one log per event. `sync_chunks`: automerge pieces that, loaded in `seq` order, give the whole log (a
-- compaction replaces them by one full save with a higher `seq`). `sync_peers`: each peer's sync state
-- (best effort). Written only under the event's `sync_log_locks` row (see issuer/src/sync/store.rs). Portable SQL.
CREATE TABLE sync_chunks (
    event_id    BIGINT  NOT NULL REFERENCES events(id),
    seq         BIGINT  NOT NULL,
    bytes       BLOB    NOT NULL,
    PRIMARY KEY (event_id, seq)
);
CREATE TABLE sync_peers (
    event_id    BIGINT  NOT NULL REFERENCES events(id),
    peer_key    TEXT    NOT NULL,
    state       BLOB    NOT NULL,
    PRIMARY KEY (event_id, peer_key)
);
-- One row per event, locked (upserted) by every write of the event's log: the instances' writes take
-- turns on it without holding the event's own row, which order commits lock.
CREATE TABLE sync_log_locks (
    event_id    BIGINT  PRIMARY KEY REFERENCES events(id)
);
