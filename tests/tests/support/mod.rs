//! The processes of the end-to-end test: `scanner` CLI devices and the edge Worker under workerd.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use scanner_core::redemption::TicketRef;
use scanner_core::ticket::SignedTicket;
use serde_json::Value;

/// The workspace's root directory.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A binary of the workspace, next to this test's own executable (target/<profile>/).
fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p scanner-cli` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// One scanner device: the real `scanner` CLI over its own data directory.
pub struct Device {
    dir: PathBuf,
    bin: PathBuf,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Device {
    /// Sets the device up from the issuer (keyring, revocations, manifest); `edge`: ask it first when scanning.
    pub fn init(work: &Path, name: &str, issuer: &str, token: &str, event: i64, edge: Option<String>) -> Device {
        let dir = work.join(format!("device-{}", name.replace(' ', "-")));
        let bin = workspace_bin("scanner");
        let mut cmd = Command::new(&bin);
        cmd.arg("--data").arg(&dir).args(["init", "--server", issuer, &format!("--token={token}"), "--name", name]);
        cmd.args(["--event", &event.to_string()]);
        if let Some(edge) = &edge {
            cmd.args(["--edge", edge]);
        }
        run(&mut cmd);
        Device { dir, bin }
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--data").arg(&self.dir);
        cmd
    }

    /// Scans every code at `gate` (the door loop: one code per line on stdin) and returns each code's
    /// verdict JSON. Exit status 1 only means the last scan was refused.
    pub fn scan_all(&self, gate: &str, codes: &[String]) -> BTreeMap<String, Value> {
        let mut child = self
            .cmd()
            .args(["scan", "--stdin", "--json", "--gate", gate])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("scanner scan");
        let mut stdin = child.stdin.take().expect("stdin");
        let input: String = codes.iter().map(|c| format!("{c}\n")).collect();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output().expect("scanner scan output");
        writer.join().expect("writer").expect("write codes");
        let code = out.status.code();
        assert!(matches!(code, Some(0 | 1)), "scan failed ({code:?}): {}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("verdict line {l:?}: {e}")))
            .collect();
        assert_eq!(lines.len(), codes.len(), "one verdict per code");
        codes.iter().cloned().zip(lines).collect()
    }

    /// Runs one `scanner` command on this device: (exit code, stdout, stderr).
    pub fn scanner(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = self.cmd().args(args).output().expect("run scanner");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    }

    /// `scanner sync`: the automerge sync with the issuer; also refreshes the revocation list.
    pub fn sync_issuer(&self) {
        run(self.cmd().arg("sync"));
    }

    /// The same sync protocol with the edge Worker.
    pub fn sync_edge(&self, edge: &Edge) {
        run(self.cmd().args(["sync", "--server", &edge.url()]));
    }
}

/// The edge Worker under workerd (Miniflare), listening on 127.0.0.1.
pub struct Edge {
    child: Child,
    url: String,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Edge {
    /// Starts the built Worker (scripts/edge-build.sh) with the issuer's keyring and revocation list,
    /// `tokens` configured statically (stored as hashes; none needed with an issuer), and the issuer to
    /// pull newer revocation lists and the device list from (with its edge token, `issuer_token`), on
    /// `port` (0: a free one), accepting the issuer's relay sessions with `relay_token`.
    pub async fn start(
        keyring: &str,
        revocations: &str,
        tokens: &[String],
        issuer: &str,
        issuer_token: &str,
        port: u16,
        relay_token: &str,
    ) -> Edge {
        let hashes: Vec<String> = tokens.iter().map(|t| scanner_core::token::token_hash_hex(t)).collect();
        let script = root().join("edge-verifier/local/serve.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .env("KEYRING_JSON", keyring)
            .env("REVOCATIONS_JSON", revocations)
            .env("SCANNER_TOKEN_HASHES", hashes.join(","))
            .env("ISSUER_URL", issuer)
            .env("ISSUER_TOKEN", issuer_token)
            .env("REVOCATIONS_REFRESH_MS", "100")
            .env("EDGE_PORT", port.to_string())
            .env("RELAY_TOKEN_HASHES", scanner_core::token::token_hash_hex(relay_token))
            // Edge admissions reach the edge's log quickly (production batches them every 5 s).
            .env("LOG_FORWARD_DELAY_MS", "100")
            .env("WRANGLER_SEND_METRICS", "false")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the edge ({}): {e}", script.display()));
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("edge READY line");
        let Some(url) = line.trim().strip_prefix("READY ").map(str::to_owned) else {
            let _ = child.kill();
            panic!("the edge did not start (got {line:?}); run scripts/edge-build.sh and npm ci in edge-verifier");
        };
        Edge { child, url }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Waits until the edge's log holds `admitted` admissions (shards forward them asynchronously).
    pub async fn wait_for_log(&self, event: i64, token: &str, admitted: u64) -> Value {
        let http = reqwest::Client::new();
        let url = format!("{}/v1/report?event={event}", self.url);
        let mut last = Value::Null;
        for _ in 0..300 {
            if let Ok(r) = http.get(&url).bearer_auth(token).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["admitted"].as_u64() == Some(admitted) {
                        return v;
                    }
                    last = v;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the edge's log did not reach {admitted} admissions: {last}");
    }
}

/// The log's reference of a ticket (what the report names it by).
pub fn ticket_ref_hex(qr_text: &str) -> String {
    let signed = SignedTicket::from_qr_text(qr_text).expect("a genuine ticket");
    TicketRef::of(&signed.ticket.ticket_id).to_hex()
}

/// The tickets in the report's conflicts.
pub fn conflict_refs(report: &Value) -> BTreeSet<String> {
    report["conflicts"]
        .as_array()
        .expect("conflicts")
        .iter()
        .filter_map(|c| c["ticket"].as_str().map(str::to_owned))
        .collect()
}

/// Distinct tickets admitted: every admission counted, minus the extra entries of each conflict.
pub fn admitted_tickets(report: &Value) -> usize {
    let admitted = report["admitted"].as_u64().expect("admitted") as usize;
    let extra: usize = report["conflicts"]
        .as_array()
        .expect("conflicts")
        .iter()
        .map(|c| c["scans"].as_array().map_or(0, |s| s.len().saturating_sub(1)))
        .sum();
    admitted - extra
}
