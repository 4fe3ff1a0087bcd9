-- Issue 15, catalog editing: ticket types and add-ons can be hidden or taken off sale instead of deleted
-- (a ticket type's index is what issued tickets carry, so rows are never deleted and indexes never
-- reused), and several ticket types can share one capacity (a quota, e.g. "Floor: 500" over Standard and
-- Student). Portable SQL (SQLite and PostgreSQL) but for the trigger at the end
-- (SQLite syntax; PostgreSQL needs it as a trigger function). Numbered after the issue so that migrations
-- written at the same time by other changes do not collide with it.

-- A capacity shared by every ticket type that points at it. `reserved` counts the tickets of those types
-- that are held or sold, moved in the same transaction as each type's own `reserved`.
CREATE TABLE quotas (
    id         INTEGER PRIMARY KEY,
    event_id   BIGINT  NOT NULL REFERENCES events(id),
    name       TEXT    NOT NULL,
    capacity   BIGINT  NOT NULL,
    reserved   BIGINT  NOT NULL DEFAULT 0,
    CHECK (reserved >= 0 AND reserved <= capacity)
);
CREATE INDEX quotas_event ON quotas (event_id);

-- hidden: not listed to buyers and not orderable (issued tickets stay valid); sales_stopped: listed as not
-- on sale and not orderable. Both are reversible.
ALTER TABLE ticket_types ADD COLUMN hidden BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE ticket_types ADD COLUMN sales_stopped BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE ticket_types ADD COLUMN quota_id BIGINT REFERENCES quotas(id);
ALTER TABLE addons ADD COLUMN hidden BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE addons ADD COLUMN sales_stopped BOOLEAN NOT NULL DEFAULT FALSE;

-- A quota's count follows its ticket types' counts on every reservation and release, whatever code path
-- moves them (orders, holds expiring, whole-order and single-ticket refunds): one rule in the store instead
-- of one in each writer. The reservation statement itself checks the quota's room (orders/reserve.rs), so
-- this never takes a quota over its capacity; if it ever did, the CHECK above aborts the transaction.
-- Moving a ticket type between quotas does not touch `reserved` and is accounted by the catalog edit.
CREATE TRIGGER ticket_types_quota_reserved AFTER UPDATE OF reserved ON ticket_types
FOR EACH ROW WHEN NEW.quota_id IS NOT NULL
BEGIN
    UPDATE quotas SET reserved = reserved + (NEW.reserved - OLD.reserved) WHERE id = NEW.quota_id;
END;
