#!/usr/bin/env python3
"""Combine the raw bench outputs in bench/out/ into bench/results.json and a markdown table.

    python3 bench/report.py bench/out bench/results.json bench/results.md

Each row says what was measured, the figure, the goal where the issues set one, and whether the goal is
met. A figure whose bench did not run (or failed) is reported as missing, never guessed. Where a peer ran in
the same run (zxing-cpp and zbar on the same QR corpus), the ratio is printed beside our figure.
Standard library only.
"""

import json
import sys
from pathlib import Path


def load(out_dir, name):
    path = Path(out_dir) / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def dig(obj, *keys):
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def row(metric, value, unit, goal=None, met=None, source="", note=""):
    return {
        "metric": metric,
        "value": value,
        "unit": unit,
        "goal": goal,
        "goal_met": met,
        "source": source,
        "note": note,
    }


def at_most(value, limit):
    return None if value is None else value <= limit


def at_least(value, limit):
    return None if value is None else value >= limit


# Issue 13: kinds of frame the decoder must read at least as often as zxing-cpp, and how fast.
KIND_ORDER = ("clean", "blur", "noise", "rotation", "perspective", "small_modules", "low_contrast", "combined",
              "inverted", "mirrored", "screen_moire", "steep_perspective", "motion_blur", "no_code", "large_720p",
              "large_1080p")
AT_LEAST_ZXING = ("inverted", "mirrored", "screen_moire", "steep_perspective", "motion_blur")
LARGE = ("large_720p", "large_1080p")
NO_CODE_P99_RATIO = 2.0
LARGE_TIME_RATIO = 1.5


def ratio(ours, theirs):
    return None if ours is None or not theirs else ours / theirs


def decode_kind_rows(core, peers):
    """One row per corpus kind (variant): read counts, median and p99 for ours, zxing-cpp and zbar on the
    same frames, with the issue's goal for that kind where it set one."""
    variants = dig(core, "decode", "variants") or {}
    rows = []
    peer_names = ("zxing-cpp", "zbar")
    known = [v for v in KIND_ORDER if v in variants]
    for name in known + sorted(v for v in variants if v not in KIND_ORDER):
        ours = variants[name]
        peer = {p: dig(peers, p, "variants", name) or {} for p in peer_names}
        zx = peer["zxing-cpp"]
        notes = [f"ours median {ours.get('median_ms')} ms, p99 {ours.get('p99_ms')} ms"]
        for p in peer_names:
            t = peer[p]
            if t.get("decoded") is not None:
                notes.append(f"{p} {t['decoded']}/{t.get('frames')}, median {t.get('median_ms')} ms, "
                             f"p99 {t.get('p99_ms')} ms")
            else:
                notes.append(f"{p} not measured")
        if ours.get("wrong"):
            notes.append(f"{ours['wrong']} misread")
        frame = ours.get("frame", "")
        value = f"{ours.get('decoded')}/{ours.get('frames')} frames"
        goal, met = None, None
        if name == "no_code":
            r = ratio(ours.get("p99_ms"), zx.get("p99_ms"))
            notes.insert(0, "frames given up on (nothing returned)")
            if r is not None:
                notes.append(f"ours/zxing-cpp p99 {r:.2f}")
            goal = f"p99 ≤ {NO_CODE_P99_RATIO:g}× zxing-cpp's p99 in the same run"
            met = None if r is None else r <= NO_CODE_P99_RATIO
            value = f"{value}, p99 {ours.get('p99_ms')} ms"
        elif name in LARGE:
            r_med = ratio(ours.get("median_ms"), zx.get("median_ms"))
            r_p99 = ratio(ours.get("p99_ms"), zx.get("p99_ms"))
            if r_med is not None:
                notes.append(f"ours/zxing-cpp median {r_med:.2f}, p99 {r_p99:.2f}" if r_p99 is not None
                             else f"ours/zxing-cpp median {r_med:.2f}")
            goal = f"median ≤ {LARGE_TIME_RATIO:g}× zxing-cpp's time, reads ≥ zxing-cpp"
            met = None if r_med is None or zx.get("decoded") is None else (
                r_med <= LARGE_TIME_RATIO and ours.get("decoded", 0) >= zx["decoded"])
            value = f"{value}, median {ours.get('median_ms')} ms"
        elif name in AT_LEAST_ZXING:
            goal = "≥ zxing-cpp on the same frames"
            met = None if zx.get("decoded") is None else ours.get("decoded", 0) >= zx["decoded"]
        rows.append(row(f"QR decode, {name.replace('_', ' ')} ({frame})", value, "", goal, met,
                        "bench (scanner-core) + bench/peers.py", "; ".join(notes)))
    ext = dig(core, "decode", "extended_totals") or {}
    if ext:
        zx = dig(peers, "zxing-cpp", "extended_totals") or {}
        zb = dig(peers, "zbar", "extended_totals") or {}
        notes = [f"ours median {ext.get('median_ms')} ms, p99 {ext.get('p99_ms')} ms"]
        for p, t in (("zxing-cpp", zx), ("zbar", zb)):
            if t.get("decoded") is not None:
                notes.append(f"{p} {t['decoded']}/{t.get('frames')}, median {t.get('median_ms')} ms, "
                             f"p99 {t.get('p99_ms')} ms")
        rows.append(row("QR decode success on every frame holding a code (all kinds)",
                        f"{ext.get('decoded')}/{ext.get('frames')}", "frames", "≥ zxing-cpp on the same frames",
                        None if zx.get("decoded") is None else ext.get("decoded", 0) >= zx["decoded"],
                        "bench (scanner-core) + bench/peers.py", "; ".join(notes)))
    return rows


def postgres_runs(out_dir, stem):
    """Every run of one PostgreSQL bench (STEM-run1.json, STEM-run2.json, …), or the single STEM.json."""
    runs = [r for r in (load(out_dir, f"{stem}-run{i}.json") for i in range(1, 10)) if r]
    if not runs:
        single = load(out_dir, f"{stem}.json")
        runs = [single] if single else []
    return runs


def mail_row(label, runs):
    """What the spike costs the mail: the outbox gives way to waiting buyers, so mail follows the orders.
    From the email job rows after each run (issuer-bench waits until none is pending); no goal."""
    runs = [r for r in runs if r.get("mail_jobs") is not None]
    if not runs:
        return row(f"{label}: order commit → mail sent, p99", None, "s", None, None, "issuer-bench")
    each = lambda key, fmt: " / ".join("n/a" if r.get(key) is None else fmt.format(r.get(key)) for r in runs)
    worst = max(r.get("mail_delay_p99_s") or 0.0 for r in runs)
    return row(f"{label}: order commit → mail sent, p99 (worst of {len(runs)} run(s))", worst, "s", None, None,
               "issuer-bench",
               f"p50 {each('mail_delay_p50_s', '{:.1f}')} s; sent during the load: "
               f"{each('mail_sent_during_load', '{}')} of {each('mail_jobs', '{}')}; outbox empty "
               f"{each('mail_drained_after_load_s', '{:.1f}')} s after the last answer")


def postgres_rows(runs, label):
    """The issuer bench on PostgreSQL (issuer-bench --database-url, `instances` issuer processes), run
    several times: the tail on a shared 2-core machine moves from run to run, so the value is the median
    run's and the goal must hold in every run."""
    if not runs:
        return [row(f"Issuer on PostgreSQL ({label}): order latency p99", None, "ms", "< 50 ms", None, "issuer-bench")]
    by_p99 = sorted(runs, key=lambda r: r.get("p99_ms") or 0.0)
    pg = by_p99[len(by_p99) // 2]
    pg_store = pg.get("store") or {}
    each = lambda key, fmt: " / ".join(fmt.format(r.get(key)) for r in runs)
    rows = []
    rate = min(r.get("durable_orders_per_s") or 0.0 for r in runs)
    rows.append(row(f"Issuer on PostgreSQL ({label}): durable orders/s (slowest of {len(runs)} runs)", rate,
                    "orders/s", "≥ 1000", at_least(rate, 1000), "issuer-bench",
                    f"offered {pg.get('offered_rate_per_s')}/s for {pg.get('seconds')} s "
                    f"to {pg.get('instances', 1)} instance(s); runs: {each('durable_orders_per_s', '{:.0f}')}/s; "
                    f"as the server reports: fsync={pg_store.get('fsync')}, "
                    f"synchronous_commit={pg_store.get('synchronous_commit')}"))
    worst = max(r.get("p99_ms") or float("inf") for r in runs)
    rows.append(row(f"Issuer on PostgreSQL ({label}): order latency p99 (median of {len(runs)} runs)",
                    pg.get("p99_ms"), "ms", "< 50 ms in every run", worst < 50, "issuer-bench",
                    f"runs: p99 {each('p99_ms', '{:.1f}')} ms, median {each('p50_ms', '{:.1f}')} ms"))
    rows.append(mail_row(f"Issuer on PostgreSQL ({label})", runs))
    oversold = max(r.get("oversold_in_db") or 0 for r in runs)
    missing = max(r.get("acknowledged_but_not_in_db") or 0 for r in runs)
    rows.append(row(f"Issuer on PostgreSQL ({label}): oversold (DB rows, worst run)", oversold, "tickets", "0",
                    oversold == 0, "issuer-bench",
                    f"tickets in the database: {each('tickets_in_db', '{}')}; "
                    f"acknowledged orders missing (worst run): {missing}"))
    return rows


def build(out_dir):
    core = load(out_dir, "scanner-core.json") or {}
    log = dig(load(out_dir, "redemption.json"), "redemption_log") or {}
    issuer = load(out_dir, "issuer.json") or {}
    edge = load(out_dir, "edge.json") or {}
    peers = load(out_dir, "peers.json") or {}
    web = load(out_dir, "web.json") or {}
    web_decode = load(out_dir, "web-decode.json") or {}
    rows = []

    typical = dig(core, "ticket", "sizes", "typical") or {}
    largest = dig(core, "ticket", "sizes", "largest") or {}
    rows.append(row("QR version of a ticket (typical / largest)",
                    None if not typical else f"{typical.get('qr_version')}-M / {largest.get('qr_version')}-M",
                    "", "small enough for a phone screen", None, "bench (scanner-core)",
                    f"{typical.get('bytes')}–{largest.get('bytes')} bytes signed, "
                    f"{typical.get('qr_text_len')}–{largest.get('qr_text_len')} QR characters" if typical else ""))

    totals = dig(core, "decode", "totals") or {}
    frames, decoded = totals.get("frames"), totals.get("decoded")
    zx = dig(peers, "zxing-cpp", "totals") or {}
    zb = dig(peers, "zbar", "totals") or {}
    note = []
    if zx.get("decoded") is not None:
        note.append(f"zxing-cpp {zx['decoded']}/{zx.get('frames')} at {zx.get('median_ms')} ms")
        if zx.get("decoded"):
            note.append(f"ratio ours/zxing-cpp decoded {decoded / zx['decoded']:.2f}" if decoded is not None else "")
    if zb.get("decoded") is not None:
        note.append(f"zbar {zb['decoded']}/{zb.get('frames')} at {zb.get('median_ms')} ms")
    rows.append(row("QR decode success on the degraded corpus (the 8 original kinds)", None if frames is None else f"{decoded}/{frames}",
                    "frames", "≥ zxing-cpp on the same frames",
                    None if not zx.get("decoded") or decoded is None else decoded >= zx["decoded"],
                    "bench (scanner-core) + bench/peers.py", "; ".join(n for n in note if n)))
    median = totals.get("median_ms")
    ratio = None
    if median is not None and zx.get("median_ms"):
        ratio = f"ours/zxing-cpp median time {median / zx['median_ms']:.2f}"
    peer_times = lambda key: "; ".join(  # noqa: E731 — every peer's figure beside ours
        f"{name} {t[key]} ms" for name, t in (("zxing-cpp", zx), ("zbar", zb)) if t.get(key) is not None)
    rows.append(row("QR decode median time", median, "ms", None, None, "bench (scanner-core) + bench/peers.py",
                    "; ".join(n for n in (peer_times("median_ms"), ratio) if n)))
    p99 = totals.get("p99_ms")
    p99_ratio = f"ours/zxing-cpp p99 {p99 / zx['p99_ms']:.1f}" if p99 is not None and zx.get("p99_ms") else ""
    rows.append(row("QR decode p99 time", p99, "ms", None, None, "bench (scanner-core) + bench/peers.py",
                    "; ".join(n for n in (peer_times("p99_ms"), p99_ratio) if n)))
    rows.extend(decode_kind_rows(core, peers))
    wt = dig(web_decode, "decode", "overall") or {}
    rows.append(row("QR decode in Chromium (PWA wasm): decoded, median",
                    None if wt.get("frames") is None
                    else f"{wt.get('decoded')}/{wt.get('frames')}, {wt.get('median_ms')} ms",
                    "", None, None, "web/scanner-wasm/bench.mjs", f"p99 {wt.get('p99_ms')} ms" if wt else ""))

    verify = dig(core, "ticket", "verify_us_median")
    rows.append(row("Ticket signature + policy verification (median)", verify, "µs", None, None,
                    "bench (scanner-core)"))
    rows.append(row("Sign + encode + render PNG (median)", dig(core, "ticket", "sign_encode_render_png_ms_median"),
                    "ms", None, None, "bench (scanner-core)"))

    pipe = log.get("pipeline") or {}
    rows.append(row("Scan pipeline p50 (decode → verify → decide → durable record)", pipe.get("p50_ms"), "ms",
                    "≤ 2 ms", at_most(pipe.get("p50_ms"), 2.0), "bench-log"))
    rows.append(row("Scan pipeline p99", pipe.get("p99_ms"), "ms", None, None, "bench-log"))
    rows.append(row("Durable record p50 / p99",
                    None if pipe.get("durable_record_p50_ms") is None
                    else f"{pipe['durable_record_p50_ms']} / {pipe.get('durable_record_p99_ms')}",
                    "ms", "≤ 1 ms", at_most(pipe.get("durable_record_p99_ms"), 1.0), "bench-log"))
    sync = log.get("sync") or {}
    rows.append(row("Bytes per scan synced", sync.get("upload_bytes_per_scan"), "B", "≤ 48 B",
                    at_most(sync.get("upload_bytes_per_scan"), 48), "bench-log"))
    mr = log.get("merge_report") or {}
    rows.append(row("Merge + report, 20 logs / 50k scans", mr.get("merge_and_report_ms"), "ms", "≤ 100 ms",
                    at_most(mr.get("merge_and_report_ms"), 100), "bench-log",
                    f"{mr.get('conflicts_found')}/{mr.get('conflicts_injected')} injected duplicates found"
                    if mr else ""))

    rows.append(row("Issuer durable orders/s", issuer.get("durable_orders_per_s"), "orders/s", "≥ 1000",
                    at_least(issuer.get("durable_orders_per_s"), 1000), "issuer-bench",
                    f"offered {issuer.get('offered_rate_per_s')}/s for {issuer.get('seconds')} s, "
                    f"sqlite synchronous={issuer.get('sqlite_synchronous')} (read back from the writer connection)"
                    if issuer else ""))
    rows.append(row("Issuer order latency p99 (all responses)", issuer.get("p99_ms"), "ms", "< 50 ms",
                    None if issuer.get("p99_ms") is None else issuer["p99_ms"] < 50, "issuer-bench",
                    f"p50 {issuer['p50_ms']:.1f} ms" if issuer.get("p50_ms") is not None else ""))
    rows.append(row("Issuer oversold tickets", issuer.get("oversold"), "tickets", "0",
                    None if issuer.get("oversold") is None else issuer["oversold"] == 0, "issuer-bench",
                    f"{issuer.get('orders_committed')} committed, {issuer.get('sold_out_409')} refused sold out"
                    if issuer else ""))
    rows.append(mail_row("Issuer (SQLite)", [issuer] if issuer else []))
    rows.append(row("Issuer idle RSS", issuer.get("idle_rss_mib"), "MiB", "≤ 30 MB",
                    at_most(issuer.get("idle_rss_mib"), 30 * 1e6 / 2**20), "issuer-bench"))
    rows.append(row("Issuer RSS after load", issuer.get("rss_after_load_mib"), "MiB", None, None, "issuer-bench"))
    # The same bench against a throwaway PostgreSQL cluster (scripts/postgres.sh: fsync on): one instance,
    # then two instances on one database with the load split between them.
    for stem, label in (("issuer-postgres", "1 instance"), ("issuer-postgres-2", "2 instances")):
        rows.extend(postgres_rows(postgres_runs(out_dir, stem), label))

    red = edge.get("redemption") or {}
    seq = red.get("sequential") or {}
    rows.append(row("Edge redemption p50 / p99 under workerd, concurrency 1",
                    None if seq.get("p50_ms") is None else f"{seq['p50_ms']} / {seq.get('p99_ms')}", "ms",
                    "p50 ≤ 5 ms", at_most(seq.get("p50_ms"), 5), "scripts/edge-bench.sh",
                    "HTTP keep-alive client on loopback"))
    rows.append(row(f"Edge redemption p50 / p99 under workerd, concurrency {red.get('concurrency')}",
                    None if red.get("p50_ms") is None else f"{red['p50_ms']} / {red.get('p99_ms')}", "ms",
                    None, None, "scripts/edge-bench.sh",
                    f"{red.get('throughput_per_s')} redemptions/s: the 2 cores are saturated (client and workerd "
                    "share them), so latency is queueing" if red else ""))
    rows.append(row("Edge Worker wasm (raw / gzip)",
                    None if edge.get("wasm_bytes") is None else f"{edge['wasm_bytes']} / {edge.get('wasm_gzip_bytes')}",
                    "bytes", "≤ 3 MB gzip (Workers free tier)",
                    at_most(edge.get("wasm_gzip_bytes"), 3 * 2**20), "scripts/edge-bench.sh"))
    if web:
        rows.append(row("Scanner PWA wasm (raw / gzip)",
                        f"{web.get('wasm_raw_bytes')} / {web.get('wasm_gzip_bytes')}", "bytes", None, None,
                        "scripts/web-build.sh", "after wasm-opt -Oz" if web.get("wasm_opt") else "no wasm-opt"))
    rows += mobile_rows(out_dir)
    rows += hub_rows(out_dir)
    return rows


def hub_rows(out_dir):
    """The venue hub (scripts/hub-bench.sh → hub.json): online redemptions it sustains, the "already used"
    round trip at a second device, and admission → another device's log at the door loop's sync interval."""
    hub = load(out_dir, "hub.json")
    if not hub:
        return []
    red = hub.get("redeem") or {}
    online = hub.get("already_used_online_ms") or {}
    prop = hub.get("propagation") or {}
    sync_s = (prop.get("sync_ms") or 2000) / 1000
    return [
        row(f"Venue hub redemptions, {red.get('clients')} clients", red.get("per_s"), "/s", None, None,
            "scripts/hub-bench.sh",
            f"p50 {red.get('p50_ms')} ms, p99 {red.get('p99_ms')} ms; every admission fsync'd before its answer"),
        row("Venue hub: admit at A → \"already used\" at B, asking the hub (p50 / p99)",
            None if online.get("p50_ms") is None else f"{online['p50_ms']} / {online.get('p99_ms')}", "ms",
            "< 3 s", at_most(online.get("p99_ms"), 3000), "scripts/hub-bench.sh", "one redeem round trip"),
        row(f"Venue hub: admit at A → in B's log, both syncing every {sync_s:g} s (mean / max)",
            None if prop.get("mean_ms") is None else f"{prop['mean_ms']} / {prop.get('max_ms')}", "ms",
            "< 3 s", at_most(prop.get("max_ms"), 3000), "scripts/hub-bench.sh",
            f"devices deciding on their own, by scanner-core's SyncSchedule (A sends its admission at once); "
            f"{prop.get('rounds')} rounds, phases spread over the interval (worst case one interval plus round "
            "trips)"),
    ]


def mobile_rows(out_dir):
    """The PWA scanner on an emulated phone (web/tests/mobile-bench.mjs → mobile.json): cold start and camera
    frame → verdict, median / p99, each goal judged on the median."""
    mobile = load(out_dir, "mobile.json") or {}
    vp = mobile.get("viewport") or {}
    phone = (f"{vp.get('width')}×{vp.get('height')} @{vp.get('deviceScaleFactor')}, "
             f"CPU throttled {mobile.get('cpu_throttling')}× (measured {mobile.get('main_thread_slowdown_measured')}×): "
             f"{mobile.get('cpu_throttling_scope')}") if mobile else ""
    rows = []
    for key, metric, goal, limit in (
            ("cold_start_ms", "PWA cold start on a phone: cached, offline → first camera verdict (median / p99)",
             "< 1.5 s", 1500),
            ("frame_to_verdict_ms", "PWA camera frame → verdict on a phone (median / p99)", "< 100 ms", 100)):
        s = mobile.get(key) or {}
        median = s.get("median")
        rows.append(row(metric, None if median is None else f"{median} / {s.get('p99')}", "ms", goal,
                        None if median is None else median < limit, "web/tests/mobile-bench.mjs",
                        f"{s.get('runs')} runs; {phone}" if s else ""))
    return rows


def fmt(v):
    if v is None:
        return "not measured"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def markdown(rows):
    lines = ["| metric | measured | goal | met | source | note |", "|---|---|---|---|---|---|"]
    for r in rows:
        met = {True: "yes", False: "**no**", None: ""}[r["goal_met"]]
        value = fmt(r["value"]) + (f" {r['unit']}" if r["value"] is not None and r["unit"] else "")
        lines.append(f"| {r['metric']} | {value} | {r['goal'] or ''} | {met} | {r['source']} | {r['note']} |")
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) != 4:
        sys.exit("usage: report.py OUT_DIR RESULTS_JSON RESULTS_MD")
    out_dir, results_json, results_md = argv[1:]
    rows = build(out_dir)
    raw = {name: load(out_dir, name) for name in
           ("scanner-core.json", "redemption.json", "issuer.json", "edge.json", "peers.json", "web.json",
            "web-decode.json", "hub.json")}
    for stem in ("issuer-postgres", "issuer-postgres-2"):
        raw[stem] = postgres_runs(out_dir, stem)
    Path(results_json).write_text(json.dumps({"rows": rows, "raw": raw}, indent=2, ensure_ascii=False) + "\n")
    table = markdown(rows)
    Path(results_md).write_text("# Benchmark results\n\nWritten by `scripts/bench.sh`.\n\n" + table)
    print(table)


if __name__ == "__main__":
    main(sys.argv)
