//! How the Worker and its Durable Objects call each other: one client function per request, so each
//! object's file holds only the object itself and no object imports another.

use worker::js_sys::Uint8Array;
use worker::{Env, Method, Response};

use scanner_core::redemption::SyncChannel;

use crate::api::ShardRedeem;
use crate::error::Error;
use crate::history::StoredScan;
use crate::relay::{AppendRequest, RelayRequest};
use crate::shard::{log_name, shard_name};

use super::http::{internal_request, json_request, pass_through, send_ok, stub};

/// Asks a shard to decide a redemption; its answer (the verdict JSON, or an error) is passed through.
pub(super) async fn ask_redeem(env: &Env, event: u32, shard: u16, redeem: &ShardRedeem) -> Result<Response, Error> {
    let target = stub(env, "REDEMPTIONS", &shard_name(event, shard))?;
    let req = json_request("https://shard/redeem", &serde_json::to_string(redeem)?)?;
    pass_through(&target, req, "redemption shard").await
}

/// Hands a shard records devices synced into the log; answers whether the shard took them.
pub(super) async fn send_relayed(env: &Env, event: u32, shard: u16, scans: Vec<StoredScan>) -> Result<(), Error> {
    let target = stub(env, "REDEMPTIONS", &shard_name(event, shard))?;
    let req = json_request("https://shard/relay", &serde_json::to_string(&RelayRequest { scans })?)?;
    send_ok(&target, req, "shard for relayed records").await.map(drop)
}

/// Request header carrying the syncing peer's identity (its token hash, hex) from the Worker to the log.
pub(super) const PEER_HEADER: &str = "X-Peer";

fn log_stub(env: &Env, event: u32) -> Result<worker::Stub, Error> {
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
) -> Result<Response, Error> {
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
pub(super) async fn report(env: &Env, event: u32, text: bool) -> Result<Response, Error> {
    let format = if text { "&format=text" } else { "" };
    let req = internal_request(&format!("https://log/report?event={event}{format}"), Method::Get, None, &[])?;
    pass_through(&log_stub(env, event)?, req, "redemption log").await
}

/// Forwards a shard's admissions to the event's log; `Ok` once the log has stored them.
pub(super) async fn append(env: &Env, event: u32, scans: Vec<StoredScan>) -> Result<(), Error> {
    let body = serde_json::to_string(&AppendRequest { event, scans })?;
    send_ok(&log_stub(env, event)?, json_request("https://log/append", &body)?, "redemption log").await.map(drop)
}
