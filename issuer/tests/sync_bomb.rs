//! A deflate bomb sent to the issuer's sync server is refused before it inflates, the process's memory
//! stays under a stated bound, and the server keeps serving. A test binary of its own: it reads the
//! process's peak resident set, which other tests running beside it would raise.

mod common;

use common::sync::{device_log, free_tickets, now_ms, report, scan, sync};
use scanner_core::redemption::decision::Verdict;
use serde_json::Value;

/// A sync message (version 1: no heads, needs or haves) carrying one compressed change chunk that
/// inflates to `inflated` zero bytes, built byte by byte as automerge's formats define them.
fn deflate_bomb(inflated: usize) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; 1 << 20];
    for _ in 0..inflated / block.len() {
        enc.write_all(&block).unwrap();
    }
    let data = enc.finish().unwrap();
    let uleb = |mut n: usize, out: &mut Vec<u8>| loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    };
    // Chunk: magic, checksum (not checked before inflation), type 2 = compressed change, length, data.
    let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    uleb(data.len(), &mut chunk);
    chunk.extend_from_slice(&data);
    let mut message = vec![0x42, 0, 0, 0, 1];
    uleb(chunk.len(), &mut message);
    message.extend_from_slice(&chunk);
    message
}

/// The process's peak resident set (VmHWM), bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deflate_bomb_is_refused_within_a_memory_bound_and_others_still_sync() {
    const ONE_GIB: usize = 1 << 30;
    const BOUND: u64 = 256 << 20;
    let app = common::start().await;
    let event = app.event(10, 0).await;
    let qr = free_tickets(&app, event, 1).await;
    let token = app.device_token(event).await;
    let bomb = deflate_bomb(ONE_GIB);
    assert!(bomb.len() < 2 << 20, "{} bytes on the wire", bomb.len());
    let resp = app
        .http
        .post(app.url(&format!("/v1/sync?event={event}&channel=push")))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("inflate"), "{body}");
    // The whole test process (server included) never held the inflated gigabyte.
    let peak = peak_rss();
    assert!(peak < BOUND, "peak RSS {} MiB, bound {} MiB", peak >> 20, BOUND >> 20);

    // The server keeps serving: a genuine device syncs right after.
    let dirs = tempfile::tempdir().unwrap();
    let mut log = device_log(&app, dirs.path(), "north", event, &token).await;
    assert!(matches!(scan(&mut log, &qr[0], "North", now_ms()), Verdict::Admit(_)));
    let _ = sync(&app, log, event, &token).await;
    assert_eq!(report(&app, event).await["admitted"], 1);
}
