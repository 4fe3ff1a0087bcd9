//! The `RedemptionShard` Durable Object: owns the redemption state of the tickets of one event that hash
//! to it (storage layout, outbox and timings: [`crate::shard`]; the decision: [`crate::history::redeem`]).

use std::cell::Cell;

use worker::js_sys::{Array, Object, Reflect};
use worker::wasm_bindgen::JsValue;
use worker::{console_error, durable_object, DurableObject, Env, ListOptions, Request, Response, State, Storage};

use crate::api::{self, recorded_verdict_json, verdict_json, ShardRedeem};
use crate::error::{Error, RequestKind};
use crate::history::{redeem, ticket_of, TicketHistory};
use crate::relay::RelayRequest;
use crate::shard::{
    by_ticket, forward_delay_ms, history_key, outbox_key, Outbox, OUTBOX_BATCH, OUTBOX_PREFIX, RETRY_MS,
};

use super::calls;
use super::errors::Logged;
use super::http::{json_ok, respond, var};
use super::trust::load_trust;

#[durable_object]
pub struct RedemptionShard {
    state: State,
    env: Env,
    /// An alarm is known to be set (saves a storage call per redemption while one is pending).
    alarm_pending: Cell<bool>,
}

async fn load_history(storage: &Storage, key: &str) -> Result<TicketHistory, Error> {
    match storage.get::<String>(key).await.logged("shard storage read failed")? {
        Some(json) => serde_json::from_str(&json).logged(&format!("shard history {key} unreadable")),
        None => Ok(TicketHistory::default()),
    }
}

impl RedemptionShard {
    async fn ensure_alarm(&self) -> Result<(), Error> {
        if !self.alarm_pending.get() {
            let delay = forward_delay_ms(var(&self.env, "LOG_FORWARD_DELAY_MS").as_deref());
            self.state.storage().set_alarm(delay).await.logged("shard alarm")?;
            self.alarm_pending.set(true);
        }
        Ok(())
    }

    async fn redeem(&self, mut req: Request) -> Result<Response, Error> {
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
    async fn relay(&self, mut req: Request) -> Result<Response, Error> {
        let relayed: RelayRequest = serde_json::from_slice(&req.bytes().await?)?;
        // Refused as a bad message (400) to the log object that sent it, which keeps and retries it.
        let by_ticket = by_ticket(relayed.scans).map_err(|e| {
            console_error!("relayed record refused: {e}");
            RequestKind::InternalMessage("relayed record")
        })?;
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
    async fn drain_outbox(&self) -> Result<(), Error> {
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
                calls::append(&self.env, event, scans).await?;
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
            _ => Err(RequestKind::NotFound.into()),
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
