#![allow(dead_code)]
//! A real local SMTP server (aiosmtpd with STARTTLS and AUTH) run by the test harness. If it cannot be
//! started the test fails: it is never skipped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const USER: &str = "issuer";
pub const PASSWORD: &str = "s3cret-pass";

pub struct Smtp {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
    pub ca: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("TICKETS_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/tickets/venv/bin/python")
    })
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is openssl installed?)"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A throwaway CA and a leaf certificate for 127.0.0.1 signed by it. Returns (ca.pem, leaf.pem, leaf.key).
pub fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Issuer Test CA",
        ])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(p("leaf.key"))
        .arg("-out")
        .arg(p("leaf.csr")));
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("leaf.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("leaf.pem"))
        .arg("-extfile")
        .arg(p("ext.cnf")));
    (p("ca.pem"), p("leaf.pem"), p("leaf.key"))
}

/// Starts the server (on `port`, or a free one with 0) and waits for it to accept connections.
pub fn start(dir: &Path, port: u16) -> Smtp {
    let (ca, cert, key) = if dir.join("leaf.pem").exists() {
        (dir.join("ca.pem"), dir.join("leaf.pem"), dir.join("leaf.key"))
    } else {
        make_certs(dir)
    };
    let out = dir.join("mail");
    // Relative to the workspace, so the cross-component tests (another crate) can include this module too.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../issuer/tests/support/smtp_server.py");
    let mut child = Command::new(python())
        .arg(script)
        .args(["--port", &port.to_string(), "--user", USER, "--password", PASSWORD])
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the SMTP server with {}: {e}; set TICKETS_PYTHON", python()));
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read READY line");
    let port = line.trim().strip_prefix("READY ").and_then(|p| p.parse().ok()).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("SMTP server did not start (got {line:?}); is aiosmtpd installed in {}?", python())
    });
    Smtp { child, port, out, ca }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn mails(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out)
        .map(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "eml")).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The bytes of the first mail the server wrote to `out`, waiting up to `timeout` for it to arrive.
pub async fn first_mail(out: &Path, timeout: std::time::Duration) -> Option<Vec<u8>> {
    let until = std::time::Instant::now() + timeout;
    loop {
        if let Some(path) = mails(out).into_iter().next() {
            return std::fs::read(path).ok();
        }
        if std::time::Instant::now() > until {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
