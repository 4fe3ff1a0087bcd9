-- As migrations/sqlite/0170: the redemption sync log's pieces and peer states, per event.
CREATE TABLE sync_chunks (
    event_id    BIGINT  NOT NULL REFERENCES events(id),
    seq         BIGINT  NOT NULL,
    bytes       BYTEA   NOT NULL,
    PRIMARY KEY (event_id, seq)
);
CREATE TABLE sync_peers (
    event_id    BIGINT  NOT NULL REFERENCES events(id),
    peer_key    TEXT    NOT NULL,
    state       BYTEA   NOT NULL,
    PRIMARY KEY (event_id, peer_key)
);
-- One row per event, locked (upserted) by every write of the event's log: the instances' writes take
-- turns on it without holding the event's own row, which order commits lock.
CREATE TABLE sync_log_locks (
    event_id    BIGINT  PRIMARY KEY REFERENCES events(id)
);
