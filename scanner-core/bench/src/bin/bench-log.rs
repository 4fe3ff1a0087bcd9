//! Benchmark of the offline redemption log: prints ONE JSON object on stdout.
//!
//! - `pipeline`: decode + verify + durable record of a scan on a clean 640×480 frame (p50/p99), and the
//!   parts (decode, verify + decide + record, durable record alone, folding a batch into the document);
//! - `sync`: bytes on the wire per scan for 20 devices × 2 500 scans (one upload each; periodic syncs;
//!   a fresh device downloading the whole log);
//! - `merge_report`: merging 20 device logs (50k scans) and computing the duplicate report;
//! - `disk`: the size of a device's log on disk and of the saved document.
//!
//! `cargo run --release -p scanner-bench --bin bench-log -- [--scans N]`

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use automerge::sync;
use clap::Parser;
use scanner_core::fixtures::{issuer, plain_ticket, qr, ticket_id, EVENT};
use scanner_core::qr::decode::decode_luma;
use scanner_core::redemption::decision::{ScanIndex, ScanInput};
use scanner_core::redemption::document::{Accept, Batch};
use scanner_core::redemption::{
    DeviceId, EventReport, HybridClock, Outcome, RedemptionDoc, RedemptionLog, ScanKind, ScanRecord, TicketRef,
};
use scanner_core::EntryPolicy;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Benchmarks the offline redemption log and prints one JSON object")]
struct Args {
    /// Scans timed through the whole pipeline.
    #[arg(long, default_value_t = 400)]
    scans: usize,
    /// Devices in the sync and merge benchmarks.
    #[arg(long, default_value_t = 20)]
    devices: u64,
    /// Scans in total over all devices.
    #[arg(long, default_value_t = 50_000)]
    total_scans: u64,
    /// Records per automerge change (the fold batch).
    #[arg(long, default_value_t = scanner_core::redemption::store::DEFAULT_FOLD_EVERY)]
    batch: usize,
}

const NOW: u64 = 1_780_336_800;

fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort_by(f64::total_cmp);
    let rank = |q: f64| samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    (rank(0.5), rank(0.99))
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn temp_dir(tag: &str) -> PathBuf {
    let nonce = rand_core_nonce();
    std::env::temp_dir().join(format!("bench-log-{tag}-{}-{nonce:x}", std::process::id()))
}

fn rand_core_nonce() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// A clean 640×480 frame holding the ticket's QR code in the middle.
fn frame(text: &str) -> Result<(usize, usize, Vec<u8>)> {
    let code = scanner_core::qr::render::luma(text, 4).context("render")?;
    let (w, h) = (640usize, 480usize);
    let mut canvas = vec![255u8; w * h];
    let (cw, ch) = (code.width() as usize, code.height() as usize);
    let (x0, y0) = ((w.saturating_sub(cw)) / 2, (h.saturating_sub(ch)) / 2);
    for y in 0..ch.min(h) {
        for x in 0..cw.min(w) {
            canvas[(y0 + y) * w + x0 + x] = code.get_pixel(x as u32, y as u32).0[0];
        }
    }
    Ok((w, h, canvas))
}

fn pipeline(args: &Args) -> Result<serde_json::Value> {
    let (key, ring) = issuer();
    let dir = temp_dir("pipeline");
    let mut log = RedemptionLog::open_or_create(&dir, "bench")?;
    log.set_keyring(&ring.to_json())?;
    log.set_event(EVENT)?;
    let frames: Vec<_> = (0..64u64)
        .map(|n| {
            let text = qr(&key, &plain_ticket(n, EVENT));
            Ok((text.clone(), frame(&text)?))
        })
        .collect::<Result<_>>()?;
    // Warm up.
    let (_, (w, h, luma)) = &frames[0];
    let _ = decode_luma(*w, *h, luma);

    let (mut total, mut decode, mut scan, mut record, mut fold) = (vec![], vec![], vec![], vec![], vec![]);
    let mut decoded_ok = 0;
    let mut admitted = 0;
    for i in 0..args.scans {
        let (text, (w, h, luma)) = &frames[i % frames.len()];
        let now_ms = (NOW + i as u64) * 1000;
        let started = Instant::now();
        let decoded = decode_luma(*w, *h, luma);
        decode.push(ms(started));
        let t_scan = Instant::now();
        let read = decoded.as_deref().unwrap_or("");
        if read == text {
            decoded_ok += 1;
        }
        let scanned = log.scan(ScanInput { text: read, kind: ScanKind::Entry, override_reason: None }, "A", now_ms)?;
        scan.push(ms(t_scan));
        total.push(ms(started));
        if scanned.verdict.is_admit() {
            admitted += 1;
        }
        // The durable record alone: a scan whose decision costs nothing (not a ticket).
        let t_record = Instant::now();
        log.scan(ScanInput { text: "x", kind: ScanKind::Entry, override_reason: None }, "A", now_ms)?;
        record.push(ms(t_record));
        if log.should_fold() {
            let t_fold = Instant::now();
            log.fold_pending((NOW + i as u64) as i64)?;
            fold.push(ms(t_fold));
        }
    }
    let (p50, p99) = percentiles(&mut total);
    let (d50, d99) = percentiles(&mut decode);
    let (s50, s99) = percentiles(&mut scan);
    let (rec50, rec99) = percentiles(&mut record);
    let (f50, f99) = percentiles(&mut fold);
    let records = log.record_count();
    log.fold_pending(NOW as i64)?;
    let size = dir_size(&dir);
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "frame": "640x480, clean, 4 px modules",
        "scans": args.scans,
        "decoded_ok": decoded_ok,
        "admitted": admitted,
        "p50_ms": r3(p50), "p99_ms": r3(p99), "goal_p50_ms": 2.0,
        "decode_p50_ms": r3(d50), "decode_p99_ms": r3(d99),
        "verify_decide_record_p50_ms": r3(s50), "verify_decide_record_p99_ms": r3(s99),
        "durable_record_p50_ms": r3(rec50), "durable_record_p99_ms": r3(rec99), "goal_record_ms": 1.0,
        "fold_batch_p50_ms": r3(f50), "fold_batch_p99_ms": r3(f99), "fold_batch_records": args.batch,
        "records": records,
        "store_bytes_on_disk": size,
    }))
}

/// 20 devices' logs of 2 500 scans each, 1% cross-device duplicates, built as devices build them
/// (decision against the device's own index, one change per batch).
fn device_logs(args: &Args) -> Result<(Vec<RedemptionDoc>, usize)> {
    let per_device = args.total_scans / args.devices;
    let stride = duplicate_stride(args);
    let mut docs = Vec::new();
    for d in 0..args.devices {
        let device = DeviceId(0x100 + d);
        let mut doc = RedemptionDoc::new_for_device(device);
        let mut index = ScanIndex::new();
        let mut clock = HybridClock::new();
        let gates = vec![format!("gate-{}", d % 4)];
        let mut pending = Vec::with_capacity(args.batch);
        for i in 0..per_device {
            let n = d * per_device + i;
            // Every `stride`-th ticket of the previous device is presented here too, offline: 1% of the scans
            // are cross-device duplicates.
            // (The previous device's ticket one place later: that place is never itself a duplicate.)
            let n = if is_duplicate(args, d, i, stride) { n + 1 - per_device } else { n };
            let secs = NOW + i;
            let ticket = TicketRef::of(&ticket_id(n));
            let outcome = if index.blocking_scan(&ticket, EntryPolicy::SingleEntry).is_some() {
                Outcome::AlreadyUsed
            } else {
                Outcome::Admitted
            };
            let r = ScanRecord {
                ticket,
                hlc: clock.tick(secs * 1000 + (i % 1000)),
                wall_time: secs as u32,
                gate: 0,
                kind: ScanKind::Entry,
                reentry: false,
                outcome,
                ticket_type: (n % 3) as u8,
                decided_by_edge: false,
                addon: None,
            };
            index.add(device, &r);
            pending.push(r);
            if pending.len() == args.batch {
                let batch = Batch { device_name: "door", gates: &gates, records: &pending, overrides: &[], time: 0 };
                doc.append_batch(device, batch)?;
                pending.clear();
            }
        }
        if !pending.is_empty() {
            let batch = Batch { device_name: "door", gates: &gates, records: &pending, overrides: &[], time: 0 };
            doc.append_batch(device, batch)?;
        }
        docs.push(doc);
    }
    let expected =
        (1..args.devices).map(|d| (0..per_device).filter(|&i| is_duplicate(args, d, i, stride)).count()).sum();
    Ok((docs, expected))
}

fn duplicate_stride(args: &Args) -> u64 {
    let per_device = args.total_scans / args.devices;
    let per_device_duplicates = (args.total_scans / 100 / args.devices.saturating_sub(1).max(1)).max(1);
    (per_device / per_device_duplicates).max(2)
}

fn is_duplicate(args: &Args, device: u64, i: u64, stride: u64) -> bool {
    let per_device_duplicates = (args.total_scans / 100 / args.devices.saturating_sub(1).max(1)).max(1);
    device > 0 && i.is_multiple_of(stride) && i / stride < per_device_duplicates
}

/// Runs the sync protocol to completion, counting bytes and record deliveries.
fn sync_pair(
    a: &mut RedemptionDoc,
    a_state: &mut sync::State,
    b: &mut RedemptionDoc,
    b_state: &mut sync::State,
) -> Result<(usize, usize, usize)> {
    let (mut bytes, mut deliveries, mut messages) = (0, 0, 0);
    for _ in 0..200 {
        let m1 = a.generate_sync_message(a_state);
        if let Some(m) = &m1 {
            bytes += m.len();
            messages += 1;
            deliveries += b.receive_sync_message(b_state, m, Accept::relay(u64::MAX / 2))?.new_records;
        }
        let m2 = b.generate_sync_message(b_state);
        if let Some(m) = &m2 {
            bytes += m.len();
            messages += 1;
            deliveries += a.receive_sync_message(a_state, m, Accept::relay(u64::MAX / 2))?.new_records;
        }
        if m1.is_none() && m2.is_none() {
            return Ok((bytes, deliveries, messages));
        }
    }
    anyhow::bail!("sync did not converge")
}

fn sync_section(args: &Args, docs: &[RedemptionDoc]) -> Result<serde_json::Value> {
    let scans = docs.iter().map(RedemptionDoc::record_count).sum::<usize>();
    // 1. Each device uploads its whole offline log in one sync session with the server.
    let mut server = RedemptionDoc::new_relay();
    let mut upload_bytes = 0;
    let mut upload_messages = 0;
    for doc in docs {
        // Upload only (the device does not take the others' records in this session); both directions
        // of the exchange are counted.
        let mut device = doc.clone();
        let (mut ds, mut ss) = (sync::State::new_read_only(), sync::State::new());
        let (b, _, m) = sync_pair(&mut device, &mut ds, &mut server, &mut ss)?;
        upload_bytes += b;
        upload_messages += m;
    }
    // 2. A fresh device downloads the whole merged log.
    let mut fresh = RedemptionDoc::new_relay();
    let (download_bytes, downloaded, _) =
        sync_pair(&mut fresh, &mut sync::State::new(), &mut server, &mut sync::State::new())?;

    // 3. Periodic: every device syncs with the server after each batch (persisted states), receiving the
    //    others' batches as it goes. Bytes per record delivered to a peer that lacked it.
    let mut periodic_server = RedemptionDoc::new_relay();
    let n = docs.len();
    let mut devices: Vec<RedemptionDoc> =
        (0..n).map(|i| RedemptionDoc::new_for_device(DeviceId(0x100 + i as u64))).collect();
    let mut server_states = vec![sync::State::new(); n];
    let mut device_states = vec![sync::State::new(); n];
    let batches: Vec<Vec<Vec<ScanRecord>>> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let log = d.device_log(DeviceId(0x100 + i as u64))?.context("device log")?;
            Ok(log.records.chunks(args.batch).map(<[_]>::to_vec).collect())
        })
        .collect::<Result<_>>()?;
    let rounds = batches.iter().map(Vec::len).max().unwrap_or(0);
    let (mut periodic_bytes, mut deliveries, mut sessions) = (0, 0, 0);
    for round in 0..rounds {
        for i in 0..n {
            if let Some(batch) = batches[i].get(round) {
                let gates = vec![format!("gate-{}", i % 4)];
                let b = Batch { device_name: "door", gates: &gates, records: batch, overrides: &[], time: 0 };
                devices[i].append_batch(DeviceId(0x100 + i as u64), b)?;
                // Persisted state only, as after a reconnect.
                let mut ds = scanner_core::redemption::document::decode_peer_state(&device_states[i].encode())?;
                let mut ss = scanner_core::redemption::document::decode_peer_state(&server_states[i].encode())?;
                let (b, d, _) = sync_pair(&mut devices[i], &mut ds, &mut periodic_server, &mut ss)?;
                device_states[i] = ds;
                server_states[i] = ss;
                periodic_bytes += b;
                deliveries += d;
                sessions += 1;
            }
        }
    }
    Ok(json!({
        "devices": n,
        "scans": scans,
        "record_bytes": scanner_core::redemption::record::RECORD_LEN,
        "batch_records": args.batch,
        "upload_bytes_per_scan": r3(upload_bytes as f64 / scans as f64),
        "upload_messages": upload_messages,
        "download_bytes_per_scan": r3(download_bytes as f64 / downloaded.max(1) as f64),
        "periodic_sync_bytes_per_delivered_scan": r3(periodic_bytes as f64 / deliveries.max(1) as f64),
        "periodic_sync_sessions": sessions,
        "periodic_deliveries": deliveries,
        "goal_bytes_per_scan": 48,
    }))
}

fn merge_report_section(docs: &[RedemptionDoc], expected: usize) -> Result<serde_json::Value> {
    let saved: Vec<Vec<u8>> = docs.iter().map(RedemptionDoc::save).collect();
    let (mut merge_ms, mut report_ms, mut total_ms) = (vec![], vec![], vec![]);
    let mut conflicts = 0;
    let mut records = 0;
    for _ in 0..7 {
        let started = Instant::now();
        let merged = RedemptionDoc::merge_saved(saved.iter().map(Vec::as_slice))?;
        merge_ms.push(ms(started));
        let t = Instant::now();
        let report = EventReport::from_logs(&merged.device_logs()?);
        report_ms.push(ms(t));
        total_ms.push(ms(started));
        conflicts = report.conflicts.len();
        records = merged.record_count();
    }
    let (m50, _) = percentiles(&mut merge_ms);
    let (r50, _) = percentiles(&mut report_ms);
    let (t50, t99) = percentiles(&mut total_ms);
    Ok(json!({
        "logs": docs.len(),
        "scans": records,
        "merge_ms": r3(m50),
        "report_ms": r3(r50),
        "merge_and_report_ms": r3(t50),
        "merge_and_report_worst_ms": r3(t99),
        "goal_ms": 100,
        "conflicts_found": conflicts,
        "conflicts_injected": expected,
        "saved_bytes_all_logs": saved.iter().map(Vec::len).sum::<usize>(),
    }))
}

fn disk_section(args: &Args, docs: &[RedemptionDoc]) -> Result<serde_json::Value> {
    // One device's share of the scans through the real store (each scan flushed), then folded.
    let per_device = (args.total_scans / args.devices) as usize;
    let dir = temp_dir("disk");
    let mut log = RedemptionLog::open_or_create(&dir, "bench")?;
    let (_, ring) = issuer();
    log.set_keyring(&ring.to_json())?;
    log.set_event(EVENT)?;
    let records: Vec<ScanRecord> =
        docs[0].device_log(DeviceId(0x100))?.context("device log")?.records.into_iter().take(per_device).collect();
    let started = Instant::now();
    for (i, _) in records.iter().enumerate() {
        log.scan(ScanInput { text: "x", kind: ScanKind::Entry, override_reason: None }, "A", (NOW + i as u64) * 1000)?;
        if log.should_fold() {
            log.fold_pending(NOW as i64)?;
        }
    }
    log.fold_pending(NOW as i64)?;
    let elapsed = ms(started);
    let scans = log.record_count();
    let sled_bytes = dir_size(&dir);
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
    let merged =
        RedemptionDoc::merge_saved(docs.iter().map(RedemptionDoc::save).collect::<Vec<_>>().iter().map(Vec::as_slice))?;
    Ok(json!({
        "device_scans": scans,
        "device_store_bytes": sled_bytes,
        "device_store_bytes_per_scan": r3(sled_bytes as f64 / scans.max(1) as f64),
        "device_scans_recorded_ms_each": r3(elapsed / scans.max(1) as f64),
        "merged_doc_scans": merged.record_count(),
        "merged_doc_saved_bytes": merged.save().len(),
    }))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let pipeline = pipeline(&args)?;
    let (docs, expected) = device_logs(&args)?;
    let merge_report = merge_report_section(&docs, expected)?;
    let sync = sync_section(&args, &docs)?;
    let disk = disk_section(&args, &docs)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "redemption_log": {
                "pipeline": pipeline,
                "sync": sync,
                "merge_report": merge_report,
                "disk": disk,
            }
        }))?
    );
    Ok(())
}
