//! The `RedemptionLogObject` Durable Object: one event's redemption log. It serves `/v1/sync` to
//! devices, takes the shards' admissions, relays devices' records to the shards and answers the report.
//! What moves where, and when the log folds and compacts, is decided in [`crate::relay`].
//!
//! Storage (SQLite): `log_part(seq, bytes)` — the automerge log as a full save followed by incremental
//! chunks, each at most [`LOG_PART_BYTES`](crate::relay::LOG_PART_BYTES); `pending(record, scan)` — edge
//! admissions acknowledged to their shard but not yet folded into the document; `peer(device, state)` —
//! automerge sync state per device token and channel; `relayed(device, records)` — the relay cursor;
//! `meta(key, value)` — the event id (for alarms).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use worker::{
    console_error, durable_object, DurableObject, Env, Request, Response, SqlStorage, SqlStorageValue, State,
};

use scanner_core::redemption::document::{decode_peer_state, encode_peer_state, MAX_SYNC_MESSAGE_BYTES};
use scanner_core::redemption::{DeviceId, SyncChannel};

use crate::error::{Error, RequestKind};
use crate::history::StoredScan;
use crate::relay::{log_parts, AppendRequest, LogRelay, LogWrite, SyncPeer, FOLD_DELAY_MS};
use crate::shard::RETRY_MS;

use super::calls::{self, PEER_HEADER};
use super::errors::Logged;
use super::http::{header, json_ok, now_ms, query_channel, query_event, query_flag, respond, typed};

/// The object's SQLite storage; every failure is logged and internal.
struct Db(SqlStorage);

impl Db {
    fn exec(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<(), Error> {
        self.0.exec(query, bindings).logged("log storage").map(drop)
    }

    fn rows(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Vec<Vec<SqlStorageValue>>, Error> {
        self.0.exec(query, bindings).and_then(|cursor| cursor.raw().collect()).logged("log storage")
    }

    /// Stores `bytes` as pieces numbered from `first_seq`; returns how many.
    fn store_parts(&self, first_seq: i64, bytes: &[u8]) -> Result<i64, Error> {
        let mut seq = first_seq;
        for part in log_parts(bytes) {
            self.exec(
                "INSERT INTO log_part (seq, bytes) VALUES (?, ?)",
                vec![seq.into(), SqlStorageValue::Blob(part.to_vec())],
            )?;
            seq += 1;
        }
        Ok(seq - first_seq)
    }
}

fn sql_int(value: Option<&SqlStorageValue>) -> Option<i64> {
    match value {
        Some(SqlStorageValue::Integer(n)) => Some(*n),
        Some(SqlStorageValue::Float(f)) => Some(*f as i64),
        _ => None,
    }
}

/// An event's log in memory, with its storage bookkeeping.
struct LoadedLog {
    relay: LogRelay,
    /// Stored pieces of the log.
    parts: i64,
    /// Records per device already relayed to the shards.
    relayed: BTreeMap<DeviceId, usize>,
}

#[durable_object]
pub struct RedemptionLogObject {
    state: State,
    env: Env,
    log: RefCell<Option<LoadedLog>>,
    relaying: Cell<bool>,
    /// An alarm is known to be set (saves a storage call per forwarded batch while one is pending).
    alarm_pending: Cell<bool>,
}

impl RedemptionLogObject {
    fn db(&self) -> Db {
        Db(self.state.storage().sql())
    }

    /// Loads the log on first use (synchronous: SQLite calls do not wait, so nothing interleaves).
    fn ensure_loaded(&self, event: u32) -> Result<(), Error> {
        if let Some(loaded) = self.log.borrow().as_ref() {
            if loaded.relay.event() != event {
                console_error!("log object of event {} asked about event {event}", loaded.relay.event());
                return Err(Error::Internal);
            }
            return Ok(());
        }
        let db = self.db();
        for ddl in [
            "CREATE TABLE IF NOT EXISTS log_part (seq INTEGER PRIMARY KEY, bytes BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS pending (record TEXT PRIMARY KEY, scan TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS peer (device TEXT PRIMARY KEY, state BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS relayed (device TEXT PRIMARY KEY, records INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        ] {
            db.exec(ddl, vec![])?;
        }
        db.exec("INSERT OR IGNORE INTO meta (key, value) VALUES ('event', ?)", vec![i64::from(event).into()])?;
        let mut saved = Vec::new();
        let mut parts = 0;
        for row in db.rows("SELECT bytes FROM log_part ORDER BY seq", vec![])? {
            if let Some(SqlStorageValue::Blob(bytes)) = row.into_iter().next() {
                saved.extend_from_slice(&bytes);
                parts += 1;
            }
        }
        let relay =
            LogRelay::load(event, &saved).logged(&format!("stored redemption log of event {event} is damaged"))?;
        let mut relayed = BTreeMap::new();
        for row in db.rows("SELECT device, records FROM relayed", vec![])? {
            if let (Some(SqlStorageValue::String(device)), Some(n)) = (row.first(), sql_int(row.get(1))) {
                if let Some(device) = DeviceId::from_hex(device) {
                    relayed.insert(device, usize::try_from(n).unwrap_or(0));
                }
            }
        }
        *self.log.borrow_mut() = Some(LoadedLog { relay, parts, relayed });
        Ok(())
    }

    /// Writes what changed in the log: appended, or (`LogRelay::unsaved_write` decides) the whole log
    /// compacted. No await between the delete and the inserts: the runtime commits them together.
    fn persist(&self, loaded: &mut LoadedLog) -> Result<(), Error> {
        let db = self.db();
        match loaded.relay.unsaved_write(loaded.parts) {
            None => {}
            Some(LogWrite::Replace(full)) => {
                db.exec("DELETE FROM log_part", vec![])?;
                loaded.parts = db.store_parts(0, &full)?;
            }
            Some(LogWrite::Append(chunk)) => {
                let next = db
                    .rows("SELECT COALESCE(MAX(seq) + 1, 0) FROM log_part", vec![])?
                    .first()
                    .and_then(|row| sql_int(row.first()))
                    .unwrap_or(0);
                loaded.parts += db.store_parts(next, &chunk)?;
            }
        }
        Ok(())
    }

    /// Writes the log's changes, or forgets the log in memory if that fails: memory must not run ahead
    /// of storage, so it is reloaded from what was stored.
    fn persist_or_forget(&self, guard: &mut Option<LoadedLog>) -> Result<(), Error> {
        let loaded = guard.as_mut().ok_or(Error::Internal)?;
        if let Err(e) = self.persist(loaded) {
            *guard = None;
            return Err(e);
        }
        Ok(())
    }

    /// Folds the buffered edge admissions into the document: appended, stored, and removed from the
    /// buffer with no await in between, so the runtime commits the three together.
    fn fold(&self) -> Result<(), Error> {
        let db = self.db();
        let mut scans = Vec::new();
        for row in db.rows("SELECT scan FROM pending", vec![])? {
            match row.first() {
                Some(SqlStorageValue::String(json)) => match serde_json::from_str::<StoredScan>(json) {
                    Ok(scan) => scans.push(scan),
                    Err(e) => console_error!("pending edge admission unreadable, dropped: {e}"),
                },
                _ => console_error!("pending edge admission is not text, dropped"),
            }
        }
        if scans.is_empty() {
            return Ok(());
        }
        let mut guard = self.log.borrow_mut();
        let loaded = guard.as_mut().ok_or(Error::Internal)?;
        let now_secs = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
        if let Err(e) = loaded.relay.append_edge(&scans, now_secs) {
            // Left in the buffer: the edge's records are ours, so this is a bug to see, not to hide.
            console_error!("edge admissions refused by the log: {e}");
            *guard = None;
            return Err(Error::Internal);
        }
        self.persist_or_forget(&mut guard)?;
        db.exec("DELETE FROM pending", vec![])?;
        Ok(())
    }

    fn sync(&self, event: u32, peer: &str, channel: SyncChannel, message: &[u8]) -> Result<(Response, bool), Error> {
        let peer = SyncPeer::parse(peer, channel).ok_or(Error::Internal)?;
        let accept = peer.accept(now_ms());
        if message.len() > MAX_SYNC_MESSAGE_BYTES {
            return Err(RequestKind::TooLarge(MAX_SYNC_MESSAGE_BYTES).into());
        }
        self.ensure_loaded(event)?;
        self.fold()?;
        let db = self.db();
        let key = peer.state_key();
        let mut state = db
            .rows("SELECT state FROM peer WHERE device = ?", vec![key.clone().into()])?
            .into_iter()
            .next()
            .and_then(|row| match row.into_iter().next() {
                Some(SqlStorageValue::Blob(bytes)) => decode_peer_state(&bytes).ok(),
                _ => None,
            })
            // Losing a peer state only makes the next exchange with that device longer.
            .unwrap_or_default();
        let mut guard = self.log.borrow_mut();
        let loaded = guard.as_mut().ok_or(Error::Internal)?;
        let reply = loaded.relay.serve(&mut state, message, accept, channel)?;
        if reply.received.changed {
            self.persist_or_forget(&mut guard)?;
        }
        db.exec(
            "INSERT OR REPLACE INTO peer (device, state) VALUES (?, ?)",
            vec![key.into(), SqlStorageValue::Blob(encode_peer_state(&state))],
        )?;
        let resp = match reply.reply {
            Some(bytes) => typed(Response::from_bytes(bytes)?, "application/octet-stream")?,
            None => Response::empty()?.with_status(204),
        };
        Ok((resp, reply.received.new_records > 0))
    }

    /// A shard's forwarded admissions: buffered durably (acknowledged once stored), folded in later.
    /// Keyed by record, so a batch re-sent after a lost acknowledgement is stored once.
    fn append(&self, body: &[u8]) -> Result<Response, Error> {
        let append: AppendRequest = serde_json::from_slice(body)?;
        self.ensure_loaded(append.event)?;
        let db = self.db();
        for scan in &append.scans {
            let json = serde_json::to_string(scan)?;
            db.exec(
                "INSERT OR IGNORE INTO pending (record, scan) VALUES (?, ?)",
                vec![scan.record.clone().into(), json.into()],
            )?;
        }
        json_ok(format!(r#"{{"buffered":{}}}"#, append.scans.len()))
    }

    async fn ensure_alarm(&self, delay_ms: i64) -> Result<(), Error> {
        if !self.alarm_pending.get() {
            self.state.storage().set_alarm(delay_ms).await.logged("log alarm")?;
            self.alarm_pending.set(true);
        }
        Ok(())
    }

    fn report(&self, event: u32, text: bool) -> Result<Response, Error> {
        self.ensure_loaded(event)?;
        self.fold()?;
        let guard = self.log.borrow();
        let loaded = guard.as_ref().ok_or(Error::Internal)?;
        let report = loaded.relay.report()?;
        if text {
            return typed(Response::ok(report.to_table())?, "text/plain; charset=utf-8");
        }
        json_ok(serde_json::to_string(&report)?)
    }

    /// Hands devices' new records to their shards, then moves the relay cursors. A failure leaves the
    /// cursors where they were (re-sending is harmless: shards skip scans they have) and re-arms the alarm.
    async fn relay_backlog(&self) -> Result<(), Error> {
        if self.relaying.replace(true) {
            // Another request is relaying; it loops until the backlog is empty.
            return Ok(());
        }
        let result = self.relay_until_empty().await;
        self.relaying.set(false);
        result
    }

    async fn relay_until_empty(&self) -> Result<(), Error> {
        loop {
            let (event, backlog) = {
                let guard = self.log.borrow();
                let loaded = guard.as_ref().ok_or(Error::Internal)?;
                (loaded.relay.event(), loaded.relay.backlog(&loaded.relayed)?)
            };
            if backlog.is_empty() {
                return Ok(());
            }
            let sends =
                backlog.by_shard.into_iter().map(|(shard, scans)| calls::send_relayed(&self.env, event, shard, scans));
            for result in futures_util::future::join_all(sends).await {
                result?;
            }
            let db = self.db();
            let mut guard = self.log.borrow_mut();
            let loaded = guard.as_mut().ok_or(Error::Internal)?;
            for (device, records) in backlog.cursors {
                let cursor = loaded.relayed.entry(device).or_default();
                *cursor = (*cursor).max(records);
                db.exec(
                    "INSERT OR REPLACE INTO relayed (device, records) VALUES (?, ?)",
                    vec![device.to_hex().into(), i64::try_from(*cursor).unwrap_or(i64::MAX).into()],
                )?;
            }
        }
    }

    async fn relay_or_retry(&self) {
        if let Err(e) = self.relay_backlog().await {
            console_error!("relay to shards failed ({e}); retrying in {RETRY_MS} ms");
            match self.state.storage().set_alarm(RETRY_MS).await {
                Ok(()) => self.alarm_pending.set(true),
                Err(e) => console_error!("cannot arm the relay alarm: {e}"),
            }
        }
    }

    async fn handle(&self, mut req: Request) -> Result<Response, Error> {
        match req.path().as_str() {
            "/sync" => {
                let event = query_event(&req)?;
                let channel = query_channel(&req)?;
                let peer = header(&req, PEER_HEADER).ok_or(Error::Internal)?;
                // Forwarded from the client's request as it arrived: a break-off is the client's.
                let body = req.bytes().await.map_err(|e| {
                    console_error!("sync body: {e}");
                    RequestKind::UnreadableBody
                })?;
                let (resp, new_records) = self.sync(event, &peer, channel, &body)?;
                if new_records {
                    // Before the reply: once a device has synced, its admissions hold at every gate.
                    // The alarm is the backstop if this object stops before the relay completes.
                    self.ensure_alarm(RETRY_MS).await?;
                    self.relay_or_retry().await;
                }
                Ok(resp)
            }
            "/append" => {
                let body = req.bytes().await?;
                // Armed before the write (a spurious alarm finds nothing to fold).
                self.ensure_alarm(FOLD_DELAY_MS).await?;
                self.append(&body)
            }
            "/report" => {
                let event = query_event(&req)?;
                self.report(event, query_flag(&req, "format", "text")?)
            }
            _ => Err(RequestKind::NotFound.into()),
        }
    }

    /// The event this object holds the log of (from storage: an alarm has no request to name it).
    fn stored_event(&self) -> Option<u32> {
        self.db()
            .rows("SELECT value FROM meta WHERE key = 'event'", vec![])
            .ok()
            .and_then(|rows| rows.first().and_then(|row| sql_int(row.first())))
            .and_then(|n| u32::try_from(n).ok())
    }
}

impl DurableObject for RedemptionLogObject {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, log: RefCell::new(None), relaying: Cell::new(false), alarm_pending: Cell::new(false) }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        respond(self.handle(req).await)
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let event = self.stored_event();
        self.alarm_pending.set(false);
        let Some(event) = event else { return Response::ok("") };
        if let Err(e) = self.ensure_loaded(event).and_then(|()| self.fold()) {
            console_error!("log alarm: buffered admissions not folded ({e}); retrying in {RETRY_MS} ms");
            self.state.storage().set_alarm(RETRY_MS).await?;
            self.alarm_pending.set(true);
            return Response::ok("");
        }
        self.relay_or_retry().await;
        Response::ok("")
    }
}
