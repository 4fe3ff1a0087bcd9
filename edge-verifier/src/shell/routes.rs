//! The Worker's fetch handler: routing (`api::Route`, scanner-core's wire paths), device and relay
//! tokens, CORS and body limits. Redemptions go to their shard, syncs and reports to the event's log;
//! nothing is decided here. (For now this file also holds the two Durable Objects those go to.)

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use worker::js_sys::{Array, Object, Reflect, Uint8Array};
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, durable_object, event, Context, DurableObject, Env, ListOptions, Method, Request, Response,
    SqlStorage, SqlStorageValue, State, Storage,
};

use scanner_core::redemption::document::{decode_peer_state, encode_peer_state, MAX_SYNC_MESSAGE_BYTES};
use scanner_core::redemption::{DeviceId, SyncChannel};

use crate::api::{
    self, check_declared_length, cors_origin, is_json, is_sync_body, parse_redeem, recorded_verdict_json, split_list,
    verdict_json, ApiError, Route, ScannerRoute, ShardRedeem, MAX_REDEEM_BODY, MAX_SYNC_BODY,
};
use crate::history::{redeem, ticket_of, StoredScan, TicketHistory};
use crate::relay::{log_parts, sync_refused, AppendRequest, LogRelay, LogWrite, RelayRequest, SyncPeer, FOLD_DELAY_MS};
use crate::shard::{
    by_ticket, forward_delay_ms, history_key, log_name, outbox_key, shard_name, shard_of, Outbox, OUTBOX_BATCH,
    OUTBOX_PREFIX, RETRY_MS,
};

use super::errors::Logged;
use super::http::{
    error_response, header, internal_request, json_ok, json_request, now_ms, pass_through, query_channel, query_event,
    query_flag, query_value, respond, send_ok, stub, typed, var,
};
use super::trust::{device_tokens, load_trust, relay_tokens};

/// Checks the device token, for `event` when the request is about one (`None`: any event the token is
/// valid for); returns the device's identity (its token's hash, never the token). Unknown: 401; valid
/// for another event: 403.
async fn authenticate(req: &Request, env: &Env, event: Option<u32>) -> Result<[u8; 32], ApiError> {
    let tokens = device_tokens(env).await?;
    let authorization = header(req, "Authorization");
    match event {
        Some(event) => Ok(tokens.authenticate(authorization.as_deref(), event)?),
        None => tokens.device_of(authorization.as_deref()).ok_or(ApiError::Unauthorized),
    }
}

/// [`authenticate`] for the event of the request's `?event=` (401 before the query is looked at).
async fn authenticate_query_event(req: &Request, env: &Env) -> Result<([u8; 32], u32), ApiError> {
    authenticate(req, env, None).await?;
    let event = query_event(req)?;
    Ok((authenticate(req, env, Some(event)).await?, event))
}

/// A relay session's peer: another sync server (the issuer) holding a token whose SHA-256 is in
/// `RELAY_TOKEN_HASHES`. Returns the token's hash (the peer's key for its sync state) and the event.
fn authenticate_relay(req: &Request, env: &Env) -> Result<([u8; 32], u32), ApiError> {
    let event = query_event(req)?;
    let relays = relay_tokens(env)?.ok_or(ApiError::Unauthorized)?;
    let hash =
        relays.authenticate(header(req, "Authorization").as_deref(), event).map_err(|_| ApiError::Unauthorized)?;
    Ok((hash, event))
}

/// Reads a body no larger than `limit`, refusing by declared length before reading.
async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    check_declared_length(header(req, "Content-Length").as_deref(), limit)?;
    let body = req.bytes().await.map_err(|_| ApiError::BadRequest("the body could not be read".into()))?;
    if body.len() > limit {
        return Err(ApiError::TooLarge(limit));
    }
    Ok(body)
}

/// `POST /v1/redeem`: scanner-core's wire `RedeemRequest`, decided by the ticket's shard.
async fn handle_redeem(mut req: Request, env: &Env) -> Result<Response, ApiError> {
    if req.method() != Method::Post {
        return Err(ApiError::MethodNotAllowed);
    }
    authenticate(&req, env, None).await?;
    if !is_json(header(&req, "Content-Type").as_deref()) {
        return Err(ApiError::UnsupportedMediaType("application/json"));
    }
    let body = read_body(&mut req, MAX_REDEEM_BODY).await?;
    let redeem_req = parse_redeem(&body)?;
    // The token must be valid for the event being scanned (403 otherwise).
    authenticate(&req, env, Some(redeem_req.event)).await?;
    // Parse only, to route: the shard verifies and decides in one step (scanner-core's `decide`), so the
    // signature is checked exactly once per redemption. Texts that are not tickets never reach a shard.
    let ticket = match ticket_of(&redeem_req.qr_text) {
        Ok((ticket, _)) => ticket,
        Err(refusal) => return json_ok(verdict_json(&api::refused(&refusal))),
    };
    // The shard of the event being scanned: a ticket for another event is refused there as wrong_event.
    let event = redeem_req.event;
    ask_redeem(env, event, shard_of(&ticket), &ShardRedeem { request: redeem_req, now_ms: now_ms() }).await
}

/// `POST /v1/sync?event=ID&channel=push|pull|relay`: one automerge sync message, as the issuer's sync
/// server takes it.
async fn handle_sync(mut req: Request, env: &Env) -> Result<Response, ApiError> {
    if req.method() != Method::Post {
        return Err(ApiError::MethodNotAllowed);
    }
    // Who is asking comes first (a device learns 401/403 before it learns its request is malformed).
    let channel = query_channel(&req);
    let (peer, event) = match channel {
        Ok(SyncChannel::Relay) => authenticate_relay(&req, env)?,
        _ => authenticate_query_event(&req, env).await?,
    };
    let channel = channel?;
    if !is_sync_body(header(&req, "Content-Type").as_deref()) {
        return Err(ApiError::UnsupportedMediaType("application/octet-stream"));
    }
    let body = read_body(&mut req, MAX_SYNC_BODY).await?;
    // The log keeps automerge sync state per token and channel, and takes from a device only what it
    // wrote under the id bound to that token.
    sync(env, event, channel, &peer, &body).await
}

/// `GET /v1/report?event=ID[&format=text]`: scanner-core's report over the edge's log.
async fn handle_report(req: Request, env: &Env) -> Result<Response, ApiError> {
    if req.method() != Method::Get {
        return Err(ApiError::MethodNotAllowed);
    }
    let (_, event) = authenticate_query_event(&req, env).await?;
    report(env, event, query_flag(&req, "format", "text")?).await
}

/// `GET /v1/scanner/...`: what `scanner init --server` fetches, so a device can be set up against the
/// edge as against the issuer. The keyring is public (as on the issuer); the rest needs a device token.
async fn handle_scanner_config(req: Request, env: &Env, route: ScannerRoute) -> Result<Response, ApiError> {
    if req.method() != Method::Get {
        return Err(ApiError::MethodNotAllowed);
    }
    if route == ScannerRoute::Keyring {
        return json_ok(load_trust(env).await?.keyring.to_json());
    }
    authenticate(&req, env, None).await?;
    match route {
        ScannerRoute::Revocations => {
            // Not about one event; a device that names one (`?event=`) must be valid for it.
            if query_value(&req, "event")?.is_some() {
                authenticate_query_event(&req, env).await?;
            }
            let since = match query_value(&req, "since")? {
                Some(v) => v.parse::<u64>().map_err(|_| ApiError::BadRequest("since must be a number".into()))?,
                None => 0,
            };
            json_ok(load_trust(env).await?.revocations.delta_since(since).to_json())
        }
        ScannerRoute::Manifest(event) => {
            authenticate(&req, env, Some(event)).await?;
            // The issuer publishes each event's manifest to KV; the edge hands it out as it is.
            let kv = env.kv("CONFIG").map_err(|_| ApiError::NotFound)?;
            match kv.get(&format!("manifest:{event}")).text().await? {
                Some(manifest) => json_ok(manifest),
                None => Err(ApiError::NotFound),
            }
        }
        ScannerRoute::Keyring | ScannerRoute::Unknown => Err(ApiError::NotFound),
    }
}

async fn route(req: Request, env: &Env) -> Result<Response, ApiError> {
    match Route::of(&req.path()).ok_or(ApiError::NotFound)? {
        Route::Redeem => handle_redeem(req, env).await,
        Route::Sync => handle_sync(req, env).await,
        Route::Report => handle_report(req, env).await,
        Route::Health => json_ok(r#"{"ok":true}"#.to_owned()),
        Route::Scanner(scanner) => handle_scanner_config(req, env, scanner).await,
    }
}

fn add_cors(mut resp: Response, origin: Option<&str>) -> worker::Result<Response> {
    let Some(origin) = origin else { return Ok(resp) };
    let headers = resp.headers_mut();
    headers.set("Access-Control-Allow-Origin", origin)?;
    headers.set("Vary", "Origin")?;
    Ok(resp)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let origin = header(&req, "Origin");
    let allowed = var(&env, "ALLOWED_ORIGINS").map(|v| split_list(&v)).unwrap_or_default();
    let cors = cors_origin(origin.as_deref(), &allowed).map(str::to_owned);
    if req.method() == Method::Options {
        // Preflight needs no token: browsers never send credentials with it.
        let mut resp = Response::empty()?.with_status(204);
        if cors.is_some() {
            let h = resp.headers_mut();
            h.set("Access-Control-Allow-Methods", "POST, GET, OPTIONS")?;
            h.set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Device-Id")?;
            h.set("Access-Control-Max-Age", "600")?;
        }
        return add_cors(resp, cors.as_deref());
    }
    let resp = match route(req, &env).await {
        Ok(resp) => resp,
        Err(e) => {
            if e.status() >= 500 {
                console_error!("edge error: {e}");
            }
            error_response(&e)?
        }
    };
    add_cors(resp, cors.as_deref())
}

/// Asks a shard to decide a redemption; its answer (the verdict JSON, or an error) is passed through.
pub(super) async fn ask_redeem(env: &Env, event: u32, shard: u16, redeem: &ShardRedeem) -> Result<Response, ApiError> {
    let target = stub(env, "REDEMPTIONS", &shard_name(event, shard))?;
    let req = json_request("https://shard/redeem", &serde_json::to_string(redeem)?)?;
    pass_through(&target, req, "redemption shard").await
}

/// Hands a shard records devices synced into the log; answers whether the shard took them.
pub(super) async fn send_relayed(env: &Env, event: u32, shard: u16, scans: Vec<StoredScan>) -> Result<(), ApiError> {
    let target = stub(env, "REDEMPTIONS", &shard_name(event, shard))?;
    let req = json_request("https://shard/relay", &serde_json::to_string(&RelayRequest { scans })?)?;
    send_ok(&target, req, "shard for relayed records").await.map(drop)
}

#[durable_object]
pub struct RedemptionShard {
    state: State,
    env: Env,
    /// An alarm is known to be set (saves a storage call per redemption while one is pending).
    alarm_pending: Cell<bool>,
}

async fn load_history(storage: &Storage, key: &str) -> Result<TicketHistory, ApiError> {
    match storage.get::<String>(key).await.logged("shard storage read failed")? {
        Some(json) => serde_json::from_str(&json).logged(&format!("shard history {key} unreadable")),
        None => Ok(TicketHistory::default()),
    }
}

impl RedemptionShard {
    async fn ensure_alarm(&self) -> Result<(), ApiError> {
        if !self.alarm_pending.get() {
            let delay = forward_delay_ms(var(&self.env, "LOG_FORWARD_DELAY_MS").as_deref());
            self.state.storage().set_alarm(delay).await.logged("shard alarm")?;
            self.alarm_pending.set(true);
        }
        Ok(())
    }

    async fn redeem(&self, mut req: Request) -> Result<Response, ApiError> {
        let ShardRedeem { request: valid, now_ms: now } = serde_json::from_slice(&req.bytes().await?)?;
        let (ticket, _) = match ticket_of(&valid.qr_text) {
            Ok(t) => t,
            Err(refusal) => return json_ok(verdict_json(&api::refused(&refusal))),
        };
        // Everything that may wait on something other than this object's storage happens before the
        // read: between the read and the write below there is no other await, so the input/output
        // gates make read-decide-write atomic against every other request to this shard.
        let trust = load_trust(&self.env).await?;
        // Armed before the write (a spurious alarm finds an empty outbox; a missing one would strand it).
        self.ensure_alarm().await?;
        let storage = self.state.storage();
        let key = history_key(&ticket);
        let mut history = load_history(&storage, &key).await?;
        let outcome = redeem(&history, &valid, &trust.context(valid.event, now / 1000), now)
            .logged("shard history unreadable")?;
        if let Some(scan) = outcome.recorded {
            // The history and the outbox entry in one write: an admission is never decided without
            // also being on its way to the log.
            let entries = Object::new();
            let outbox = serde_json::to_string(&scan)?;
            Reflect::set(&entries, &JsValue::from_str(&outbox_key(valid.event, &scan)), &JsValue::from_str(&outbox))?;
            history.insert(scan);
            let json = serde_json::to_string(&history)?;
            Reflect::set(&entries, &JsValue::from_str(&key), &JsValue::from_str(&json))?;
            storage.put_multiple_raw(entries).await.logged("shard storage write failed")?;
        }
        json_ok(recorded_verdict_json(&outcome.verdict, outcome.hlc))
    }

    /// Records devices synced into the log: added to their tickets' histories (idempotently).
    async fn relay(&self, mut req: Request) -> Result<Response, ApiError> {
        let relayed: RelayRequest = serde_json::from_slice(&req.bytes().await?)?;
        let by_ticket = by_ticket(relayed.scans).map_err(|_| ApiError::BadRequest("relayed record".into()))?;
        let storage = self.state.storage();
        let mut added = 0usize;
        for (ticket, scans) in by_ticket {
            // Read and write with no other await between (as in redeem): atomic against redemptions.
            let key = history_key(&ticket);
            let mut history = load_history(&storage, &key).await?;
            let new = scans.into_iter().map(|scan| history.insert(scan)).filter(|&added| added).count();
            if new > 0 {
                added += new;
                let json = serde_json::to_string(&history)?;
                storage.put(&key, json).await.logged("shard storage write failed")?;
            }
        }
        json_ok(format!(r#"{{"added":{added}}}"#))
    }

    /// Sends the outbox to the event's log until it is empty.
    async fn drain_outbox(&self) -> Result<(), ApiError> {
        let storage = self.state.storage();
        loop {
            let listed = storage
                .list_with_options(ListOptions::new().prefix(OUTBOX_PREFIX).limit(OUTBOX_BATCH))
                .await
                .logged("shard outbox read failed")?;
            let mut entries = Vec::new();
            for entry in listed.entries() {
                let pair = Array::from(&entry?);
                entries
                    .push((pair.get(0).as_string().unwrap_or_default(), pair.get(1).as_string().unwrap_or_default()));
            }
            let outbox = Outbox::from_entries(entries);
            for key in &outbox.unreadable {
                // Unreadable entries cannot be delivered; kept for inspection, not looped on.
                console_error!("shard outbox entry {key} is unreadable; skipped");
            }
            if outbox.is_empty() {
                return Ok(());
            }
            for (event, scans) in outbox.by_event {
                append(&self.env, event, scans).await?;
            }
            storage.delete_multiple(outbox.keys).await.logged("shard outbox delete failed")?;
        }
    }
}

impl DurableObject for RedemptionShard {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, alarm_pending: Cell::new(false) }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        respond(match req.path().as_str() {
            "/redeem" => self.redeem(req).await,
            "/relay" => self.relay(req).await,
            _ => Err(ApiError::NotFound),
        })
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.alarm_pending.set(false);
        if let Err(e) = self.drain_outbox().await {
            console_error!("shard outbox not drained ({e}); retrying in {RETRY_MS} ms");
            self.state.storage().set_alarm(RETRY_MS).await?;
            self.alarm_pending.set(true);
        }
        Response::ok("")
    }
}

/// Request header carrying the syncing peer's identity (its token hash, hex) from the Worker to the log.
const PEER_HEADER: &str = "X-Peer";

fn log_stub(env: &Env, event: u32) -> Result<worker::Stub, ApiError> {
    stub(env, "REDEMPTION_LOG", &log_name(event))
}

/// Hands a device's sync message (authenticated as `peer`, a token hash) to the event's log; its answer
/// is passed through.
pub(super) async fn sync(
    env: &Env,
    event: u32,
    channel: SyncChannel,
    peer: &[u8; 32],
    message: &[u8],
) -> Result<Response, ApiError> {
    let peer: String = peer.iter().map(|b| format!("{b:02x}")).collect();
    let req = internal_request(
        &format!("https://log/sync?event={event}&channel={}", channel.as_str()),
        Method::Post,
        Some(Uint8Array::from(message).into()),
        &[(PEER_HEADER, &peer)],
    )?;
    pass_through(&log_stub(env, event)?, req, "redemption log").await
}

/// The event's report (JSON, or a text table); its answer is passed through.
pub(super) async fn report(env: &Env, event: u32, text: bool) -> Result<Response, ApiError> {
    let format = if text { "&format=text" } else { "" };
    let req = internal_request(&format!("https://log/report?event={event}{format}"), Method::Get, None, &[])?;
    pass_through(&log_stub(env, event)?, req, "redemption log").await
}

/// Forwards a shard's admissions to the event's log; `Ok` once the log has stored them.
pub(super) async fn append(env: &Env, event: u32, scans: Vec<StoredScan>) -> Result<(), ApiError> {
    let body = serde_json::to_string(&AppendRequest { event, scans })?;
    send_ok(&log_stub(env, event)?, json_request("https://log/append", &body)?, "redemption log").await.map(drop)
}

/// The object's SQLite storage; every failure is logged and internal.
struct Db(SqlStorage);

impl Db {
    fn exec(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<(), ApiError> {
        self.0.exec(query, bindings).logged("log storage").map(drop)
    }

    fn rows(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Vec<Vec<SqlStorageValue>>, ApiError> {
        self.0.exec(query, bindings).and_then(|cursor| cursor.raw().collect()).logged("log storage")
    }

    /// Stores `bytes` as pieces numbered from `first_seq`; returns how many.
    fn store_parts(&self, first_seq: i64, bytes: &[u8]) -> Result<i64, ApiError> {
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
    fn ensure_loaded(&self, event: u32) -> Result<(), ApiError> {
        if let Some(loaded) = self.log.borrow().as_ref() {
            if loaded.relay.event() != event {
                console_error!("log object of event {} asked about event {event}", loaded.relay.event());
                return Err(ApiError::Internal);
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
    fn persist(&self, loaded: &mut LoadedLog) -> Result<(), ApiError> {
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
    fn persist_or_forget(&self, guard: &mut Option<LoadedLog>) -> Result<(), ApiError> {
        let loaded = guard.as_mut().ok_or(ApiError::Internal)?;
        if let Err(e) = self.persist(loaded) {
            *guard = None;
            return Err(e);
        }
        Ok(())
    }

    /// Folds the buffered edge admissions into the document: appended, stored, and removed from the
    /// buffer with no await in between, so the runtime commits the three together.
    fn fold(&self) -> Result<(), ApiError> {
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
        let loaded = guard.as_mut().ok_or(ApiError::Internal)?;
        let now_secs = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
        if let Err(e) = loaded.relay.append_edge(&scans, now_secs) {
            // Left in the buffer: the edge's records are ours, so this is a bug to see, not to hide.
            console_error!("edge admissions refused by the log: {e}");
            *guard = None;
            return Err(ApiError::Internal);
        }
        self.persist_or_forget(&mut guard)?;
        db.exec("DELETE FROM pending", vec![])?;
        Ok(())
    }

    fn sync(&self, event: u32, peer: &str, channel: SyncChannel, message: &[u8]) -> Result<(Response, bool), ApiError> {
        let peer = SyncPeer::parse(peer, channel).ok_or(ApiError::Internal)?;
        let accept = peer.accept(now_ms());
        if message.len() > MAX_SYNC_MESSAGE_BYTES {
            return Err(ApiError::TooLarge(MAX_SYNC_MESSAGE_BYTES));
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
        let loaded = guard.as_mut().ok_or(ApiError::Internal)?;
        let reply = loaded.relay.serve(&mut state, message, accept, channel).map_err(sync_refused)?;
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
    fn append(&self, body: &[u8]) -> Result<Response, ApiError> {
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

    async fn ensure_alarm(&self, delay_ms: i64) -> Result<(), ApiError> {
        if !self.alarm_pending.get() {
            self.state.storage().set_alarm(delay_ms).await.logged("log alarm")?;
            self.alarm_pending.set(true);
        }
        Ok(())
    }

    fn report(&self, event: u32, text: bool) -> Result<Response, ApiError> {
        self.ensure_loaded(event)?;
        self.fold()?;
        let guard = self.log.borrow();
        let loaded = guard.as_ref().ok_or(ApiError::Internal)?;
        let report = loaded.relay.report().logged("report")?;
        if text {
            return typed(Response::ok(report.to_table())?, "text/plain; charset=utf-8");
        }
        json_ok(serde_json::to_string(&report)?)
    }

    /// Hands devices' new records to their shards, then moves the relay cursors. A failure leaves the
    /// cursors where they were (re-sending is harmless: shards skip scans they have) and re-arms the alarm.
    async fn relay_backlog(&self) -> Result<(), ApiError> {
        if self.relaying.replace(true) {
            // Another request is relaying; it loops until the backlog is empty.
            return Ok(());
        }
        let result = self.relay_until_empty().await;
        self.relaying.set(false);
        result
    }

    async fn relay_until_empty(&self) -> Result<(), ApiError> {
        loop {
            let (event, backlog) = {
                let guard = self.log.borrow();
                let loaded = guard.as_ref().ok_or(ApiError::Internal)?;
                (loaded.relay.event(), loaded.relay.backlog(&loaded.relayed).logged("relay backlog")?)
            };
            if backlog.is_empty() {
                return Ok(());
            }
            let sends = backlog.by_shard.into_iter().map(|(shard, scans)| send_relayed(&self.env, event, shard, scans));
            for result in futures_util::future::join_all(sends).await {
                result?;
            }
            let db = self.db();
            let mut guard = self.log.borrow_mut();
            let loaded = guard.as_mut().ok_or(ApiError::Internal)?;
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

    async fn handle(&self, mut req: Request) -> Result<Response, ApiError> {
        match req.path().as_str() {
            "/sync" => {
                let event = query_event(&req)?;
                let channel = query_channel(&req)?;
                let peer = header(&req, PEER_HEADER).ok_or(ApiError::Internal)?;
                let body = req.bytes().await.map_err(|_| ApiError::BadRequest("the body could not be read".into()))?;
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
            _ => Err(ApiError::NotFound),
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
