//! Device setup: the setup link the issuer hands out (a URL whose fragment carries everything a scanner
//! needs to set itself up, also shown as a QR code) and the rule for which servers a device talks to.
//!
//! The CLI (`scanner init --setup URL`) and the PWA (through scanner-wasm) both parse links here, so they
//! accept and refuse exactly the same ones.
//!
//! Link: `{issuer}/scanner/#setup=<base64url(JSON)>` with the JSON fields, in this order,
//! `{"v": 2, "server", "token", "event", "edge", "device_name", "keyring_sha256"}`. The token travels in the
//! fragment, which browsers never send to a server or put in a `Referer`. `keyring_sha256` pins the
//! keyring (see [`crate::Keyring::sha256`]): a device refuses a fetched keyring that does not match it,
//! so whoever answers at `server` cannot make the device trust other keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The setup link format version this code writes and reads.
pub const SETUP_VERSION: u8 = 2;
/// Longest device token accepted from a link.
const MAX_TOKEN_CHARS: usize = 512;
/// Device names from links are cut to this many characters.
const MAX_NAME_CHARS: usize = 64;
/// Longest link accepted (a QR code holds less anyway).
const MAX_LINK_CHARS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SetupKind {
    #[error("this is not a scanner setup link")]
    NotALink,
    #[error("this setup link is damaged ({0}); ask the organizer for a new one")]
    Damaged(&'static str),
    #[error("this setup link has format version {0}, this scanner reads version {SETUP_VERSION}; ask the organizer for a new one")]
    Version(u64),
    #[error("{0:?} is not an http(s) URL this scanner accepts: {1}")]
    BadUrl(String, &'static str),
    #[error("{0:?} is plain http to a host other than this machine: only https is accepted (http only for localhost, 127.0.0.1 and [::1])")]
    PlainHttp(String),
    #[error("a certificate pin must be 64 hex digits (the SHA-256 of the DER certificate, colons allowed), got {0:?}")]
    BadCertPin(String),
    #[error("a certificate pin needs an https:// URL, not {0:?}")]
    PinWithoutHttps(String),
}

/// A pinned server certificate: the SHA-256 of its DER encoding, as `scanner hub --self-signed` prints it
/// and `scanner init --hub-cert-sha256` takes it. The one rule every client applies to a pinned hub: the
/// server's end-entity certificate is accepted if and only if its DER SHA-256 equals the pin (no chain,
/// no name, no expiry: the organizer vouched for this exact certificate by handing out its fingerprint).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CertPin([u8; 32]);

impl CertPin {
    /// 64 hex digits, either case; `:` separators (as `openssl x509 -fingerprint` prints them) allowed.
    pub fn parse(text: &str) -> crate::Result<Self> {
        let hex: String = text.trim().chars().filter(|c| *c != ':').collect();
        let bad = || crate::Error::from(SetupKind::BadCertPin(text.chars().take(120).collect()));
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        crate::keyring::parse_pin(&hex).map(Self).map_err(|_| bad())
    }

    /// The pin of a DER certificate (what a hub prints for its own certificate).
    pub fn of_der(der: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(der).into())
    }

    /// Whether `der` is the pinned certificate. Constant-time in the digest, so a client that answers
    /// slower or faster reveals nothing about how close a certificate came.
    pub fn matches(&self, der: &[u8]) -> bool {
        crate::wire::digest_eq(&Self::of_der(der).0, &self.0)
    }

    /// 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        crate::keyring::to_hex(&self.0)
    }
}

impl std::fmt::Debug for CertPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertPin({})", self.to_hex())
    }
}

/// A pinned server's URL: checked like every server URL, and https is required (a pin on plain http
/// would pin nothing).
pub fn check_pinned_url(url: &str) -> crate::Result<String> {
    let url = check_server_url(url)?;
    if !url.starts_with("https://") {
        return Err(SetupKind::PinWithoutHttps(url).into());
    }
    Ok(url)
}

/// What a setup link carries, checked: `server`, `edge` and `hub` passed [`check_server_url`] (normalised,
/// no trailing `/`), `keyring_sha256` is 64 lower-case hex digits, and so is `hub_cert_sha256` (only with an
/// `https://` hub).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupLink {
    pub v: u8,
    pub server: String,
    pub token: String,
    pub event: u32,
    pub edge: Option<String>,
    pub device_name: String,
    pub keyring_sha256: String,
    /// A venue hub's base URL: asked first for verdicts and synced with every few seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// The hub certificate's SHA-256 ([`CertPin::to_hex`]), for clients that can pin (the CLI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_cert_sha256: Option<String>,
}

impl SetupLink {
    /// `{base}/scanner/#setup=<base64url(JSON)>`.
    pub fn to_url(&self, base: &str) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{}/scanner/#setup={}", base.trim_end_matches('/'), B64.encode(json))
    }

    /// Parses a setup link (the whole URL, or just what follows `setup=`) and checks every field: the
    /// version, the server, edge and hub URLs ([`check_server_url`]), the token, the event, the keyring pin
    /// and the hub's certificate pin ([`CertPin`], which needs an `https://` hub).
    pub fn parse(link: &str) -> crate::Result<Self> {
        let link = link.trim();
        if link.len() > MAX_LINK_CHARS {
            return Err(SetupKind::Damaged("too long").into());
        }
        let encoded = match link.find('#') {
            Some(i) => {
                let fragment = &link[i + 1..];
                fragment.split('&').find_map(|part| part.strip_prefix("setup=")).ok_or(SetupKind::NotALink)?
            }
            None => link.strip_prefix("setup=").unwrap_or(link),
        };
        let bytes = B64.decode(encoded.trim_end_matches('=')).map_err(|_| SetupKind::NotALink)?;
        let raw: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| SetupKind::Damaged("not JSON"))?;
        let version = raw.get("v").and_then(serde_json::Value::as_u64).ok_or(SetupKind::Damaged("no version"))?;
        if version != u64::from(SETUP_VERSION) {
            return Err(SetupKind::Version(version).into());
        }
        let text = |name: &'static str| raw.get(name).and_then(serde_json::Value::as_str);
        let server = check_server_url(text("server").ok_or(SetupKind::Damaged("server"))?)?;
        let edge = optional_text(&raw, "edge")?.map(check_server_url).transpose()?;
        let hub_cert_sha256 = optional_text(&raw, "hub_cert_sha256")?.map(CertPin::parse).transpose()?;
        let hub = match (optional_text(&raw, "hub")?, &hub_cert_sha256) {
            (Some(url), Some(_)) => Some(check_pinned_url(url)?),
            (Some(url), None) => Some(check_server_url(url)?),
            (None, Some(_)) => return Err(SetupKind::Damaged("hub_cert_sha256 without a hub").into()),
            (None, None) => None,
        };
        let token = text("token").filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_CHARS);
        let token = token.ok_or(SetupKind::Damaged("token"))?.to_owned();
        let event = raw.get("event").and_then(serde_json::Value::as_u64).and_then(|e| u32::try_from(e).ok());
        let event = event.ok_or(SetupKind::Damaged("event"))?;
        let pin = text("keyring_sha256").ok_or(SetupKind::Damaged("keyring_sha256"))?;
        let pin = crate::keyring::parse_pin(pin).map_err(|_| SetupKind::Damaged("keyring_sha256"))?;
        let name: String = text("device_name").unwrap_or("").trim().chars().take(MAX_NAME_CHARS).collect();
        Ok(Self {
            v: SETUP_VERSION,
            server,
            token,
            event,
            edge,
            device_name: if name.is_empty() { "scanner".to_owned() } else { name },
            keyring_sha256: crate::keyring::to_hex(&pin),
            hub,
            hub_cert_sha256: hub_cert_sha256.map(|p| p.to_hex()),
        })
    }
}

/// An optional text field of a link: absent, `null` and `""` all mean "not set"; any other type is damage.
fn optional_text<'a>(raw: &'a serde_json::Value, name: &'static str) -> crate::Result<Option<&'a str>> {
    match raw.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(SetupKind::Damaged(name).into()),
    }
}

/// The one rule for the servers a device talks to (issuer, edge): `https://`, or plain `http://` only to
/// this machine (`localhost`, `127.0.0.1`, `[::1]`), where nobody sits in between. Checked before any
/// request. Returns the URL normalised (scheme and host lower-case, no trailing `/`), which is the one to
/// use: what was checked is what is fetched.
///
/// Deliberately strict: no user info (`@`), query, fragment, backslash, whitespace or non-ASCII, so that
/// every URL parser (browser, ureq) sees the same host.
pub fn check_server_url(url: &str) -> crate::Result<String> {
    let bad = |why| crate::Error::from(SetupKind::BadUrl(url.chars().take(200).collect(), why));
    if url.is_empty() || url.len() > 2048 {
        return Err(bad("empty or too long"));
    }
    if !url.chars().all(|c| c.is_ascii_graphic()) {
        return Err(bad("spaces, control or non-ASCII characters"));
    }
    if url.contains(['@', '\\', '?', '#']) {
        return Err(bad("user info, query, fragment or backslash"));
    }
    let lower = url.to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("https://") {
        ("https", &url["https://".len()..])
    } else if lower.starts_with("http://") {
        ("http", &url["http://".len()..])
    } else {
        return Err(bad("not http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let authority = authority.to_ascii_lowercase();
    let (host, port) = if let Some(after) = authority.strip_prefix('[') {
        let end = after.find(']').ok_or_else(|| bad("unclosed [IPv6 address]"))?;
        let ip = &after[..end];
        if ip.is_empty() || !ip.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err(bad("bad IPv6 address"));
        }
        (&authority[..end + 2], &after[end + 1..])
    } else {
        match authority.find(':') {
            Some(i) => (&authority[..i], &authority[i..]),
            None => (authority.as_str(), ""),
        }
    };
    if !host.starts_with('[')
        && (host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        return Err(bad("bad host name"));
    }
    if !port.is_empty() {
        let digits = port.strip_prefix(':').ok_or_else(|| bad("bad port"))?;
        if digits.is_empty() || digits.len() > 5 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad("bad port"));
        }
        if digits.parse::<u32>().map_or(true, |p| p > 65535) {
            return Err(bad("bad port"));
        }
    }
    if scheme == "http" && !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
        return Err(SetupKind::PlainHttp(url.chars().take(200).collect()).into());
    }
    Ok(format!("{scheme}://{host}{port}{}", path.trim_end_matches('/')))
}

#[cfg(test)]
mod cert_pin_tests {
    use super::*;

    // The SHA-256 of the three bytes "abc" (FIPS 180-2, appendix B.1), an independent expected value.
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn the_pin_matches_exactly_the_pinned_bytes() {
        let pin = CertPin::parse(ABC_SHA256).unwrap();
        assert!(pin.matches(b"abc"));
        assert!(!pin.matches(b"abd"));
        assert!(!pin.matches(b""));
        assert_eq!(CertPin::of_der(b"abc"), pin);
        assert_eq!(pin.to_hex(), ABC_SHA256);
    }

    #[test]
    fn pins_parse_in_either_case_and_with_colons() {
        let upper = ABC_SHA256.to_ascii_uppercase();
        let colons: Vec<String> = upper.as_bytes().chunks(2).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
        assert_eq!(CertPin::parse(&upper).unwrap(), CertPin::parse(ABC_SHA256).unwrap());
        assert_eq!(CertPin::parse(&colons.join(":")).unwrap(), CertPin::parse(ABC_SHA256).unwrap());
    }

    #[test]
    fn bad_pins_are_refused_without_panicking() {
        for bad in ["", "abc", &ABC_SHA256[..62], &format!("{ABC_SHA256}00"), &ABC_SHA256.replace('b', "g"), "é"] {
            assert!(matches!(CertPin::parse(bad), Err(crate::Error::Setup(SetupKind::BadCertPin(_)))), "{bad:?}");
        }
        // Multi-byte characters where hex digits should be must not split a char.
        assert!(CertPin::parse(&"é".repeat(32)).is_err());
    }

    #[test]
    fn a_pinned_url_must_be_https() {
        assert_eq!(check_pinned_url("https://192.168.1.20:8443/").unwrap(), "https://192.168.1.20:8443");
        assert!(matches!(
            check_pinned_url("http://127.0.0.1:8088"),
            Err(crate::Error::Setup(SetupKind::PinWithoutHttps(_)))
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> SetupLink {
        SetupLink {
            v: SETUP_VERSION,
            server: "https://tickets.example.org".into(),
            token: "tok".into(),
            event: 7,
            edge: Some("https://edge.example.org".into()),
            device_name: "North door".into(),
            keyring_sha256: "ab".repeat(32),
            hub: None,
            hub_cert_sha256: None,
        }
    }

    #[test]
    fn links_round_trip_whole_or_as_payload() {
        let url = link().to_url("https://tickets.example.org/");
        assert!(url.starts_with("https://tickets.example.org/scanner/#setup="));
        assert_eq!(SetupLink::parse(&url).unwrap(), link());
        let payload = url.split("setup=").nth(1).unwrap();
        assert_eq!(SetupLink::parse(payload).unwrap(), link());
        assert_eq!(SetupLink::parse(&format!("setup={payload}")).unwrap(), link());
    }

    fn with(change: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = serde_json::to_value(link()).unwrap();
        change(&mut v);
        format!("https://x/scanner/#setup={}", B64.encode(serde_json::to_vec(&v).unwrap()))
    }

    #[test]
    fn bad_links_are_refused() {
        assert!(matches!(SetupLink::parse("https://x/scanner/"), Err(crate::Error::Setup(SetupKind::NotALink))));
        assert!(matches!(SetupLink::parse("https://x/#setup=***"), Err(crate::Error::Setup(SetupKind::NotALink))));
        assert!(matches!(
            SetupLink::parse(&with(|v| v["v"] = 1.into())),
            Err(crate::Error::Setup(SetupKind::Version(1)))
        ));
        assert!(matches!(
            SetupLink::parse(&with(|v| v.as_object_mut().unwrap().remove("keyring_sha256").map(drop).unwrap())),
            Err(crate::Error::Setup(SetupKind::Damaged("keyring_sha256")))
        ));
        assert!(matches!(
            SetupLink::parse(&with(|v| v["keyring_sha256"] = "zz".into())),
            Err(crate::Error::Setup(SetupKind::Damaged(_)))
        ));
        assert!(matches!(
            SetupLink::parse(&with(|v| v["event"] = (-1).into())),
            Err(crate::Error::Setup(SetupKind::Damaged("event")))
        ));
        assert!(matches!(
            SetupLink::parse(&with(|v| v["token"] = "".into())),
            Err(crate::Error::Setup(SetupKind::Damaged("token")))
        ));
        assert!(matches!(
            SetupLink::parse(&with(|v| v["server"] = "http://tickets.example.org".into())),
            Err(crate::Error::Setup(SetupKind::PlainHttp(_)))
        ));
        assert!(matches!(
            SetupLink::parse(&with(|v| v["edge"] = "http://10.0.0.1:8787".into())),
            Err(crate::Error::Setup(SetupKind::PlainHttp(_)))
        ));
        let local = SetupLink::parse(&with(|v| {
            v["server"] = "http://127.0.0.1:8080/".into();
            v["edge"] = serde_json::Value::Null;
            v["device_name"] = "  ".into();
        }))
        .unwrap();
        assert_eq!(
            (local.server.as_str(), local.edge, local.device_name.as_str()),
            ("http://127.0.0.1:8080", None, "scanner")
        );
    }

    #[test]
    fn a_hub_and_its_certificate_pin_travel_in_the_link() {
        // SHA-256 of "abc" (FIPS 180-2, appendix B.1), written as openssl prints fingerprints.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let openssl_style: Vec<String> =
            abc.to_ascii_uppercase().as_bytes().chunks(2).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
        let pinned = SetupLink::parse(&with(|v| {
            v["hub"] = "HTTPS://192.168.1.20:8443/".into();
            v["hub_cert_sha256"] = openssl_style.join(":").into();
        }))
        .unwrap();
        assert_eq!(pinned.hub.as_deref(), Some("https://192.168.1.20:8443"));
        assert_eq!(pinned.hub_cert_sha256.as_deref(), Some(abc));
        assert_eq!(SetupLink::parse(&pinned.to_url("https://x")).unwrap(), pinned);

        // A hub on this machine may be plain http (no pin then).
        let local = SetupLink::parse(&with(|v| v["hub"] = "http://127.0.0.1:8088".into())).unwrap();
        assert_eq!((local.hub.as_deref(), local.hub_cert_sha256), (Some("http://127.0.0.1:8088"), None));
        for unset in [serde_json::Value::Null, "".into()] {
            let link = SetupLink::parse(&with(|v| v["hub"] = unset.clone())).unwrap();
            assert_eq!(link.hub, None);
        }

        // Links without a hub do not mention one: older scanners read them as before.
        let payload = link().to_url("https://x");
        let json = B64.decode(payload.split("setup=").nth(1).unwrap()).unwrap();
        let json = String::from_utf8(json).unwrap();
        assert!(!json.contains("hub"), "{json}");
    }

    #[test]
    fn bad_hubs_and_hub_pins_are_refused() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let refused = |change: &dyn Fn(&mut serde_json::Value)| SetupLink::parse(&with(change)).unwrap_err();
        assert!(matches!(
            refused(&|v| v["hub"] = "http://192.168.1.20:8088".into()),
            crate::Error::Setup(SetupKind::PlainHttp(_))
        ));
        assert!(matches!(
            refused(&|v| v["hub"] = "https://hub.lan/?x=1".into()),
            crate::Error::Setup(SetupKind::BadUrl(..))
        ));
        assert!(matches!(refused(&|v| v["hub"] = 8088.into()), crate::Error::Setup(SetupKind::Damaged("hub"))));
        assert!(matches!(
            refused(&|v| {
                v["hub"] = "http://127.0.0.1:8088".into();
                v["hub_cert_sha256"] = abc.into();
            }),
            crate::Error::Setup(SetupKind::PinWithoutHttps(_))
        ));
        assert!(matches!(
            refused(&|v| {
                v["hub"] = "https://192.168.1.20:8443".into();
                v["hub_cert_sha256"] = abc[..40].into();
            }),
            crate::Error::Setup(SetupKind::BadCertPin(_))
        ));
        assert!(matches!(
            refused(&|v| {
                v["hub"] = "https://192.168.1.20:8443".into();
                v["hub_cert_sha256"] = 7.into();
            }),
            crate::Error::Setup(SetupKind::Damaged("hub_cert_sha256"))
        ));
        assert!(matches!(
            refused(&|v| v["hub_cert_sha256"] = abc.into()),
            crate::Error::Setup(SetupKind::Damaged("hub_cert_sha256 without a hub"))
        ));
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in [
            "http://localhost:8080",
            "http://127.0.0.1",
            "http://[::1]:9/",
            "HTTP://LocalHost",
            "https://a.example.org/x/",
        ] {
            assert!(check_server_url(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            check_server_url("HTTPS://Tickets.Example.org:443/base/").unwrap(),
            "https://tickets.example.org:443/base"
        );
        assert_eq!(check_server_url("http://[::1]:8080").unwrap(), "http://[::1]:8080");
        for plain in [
            "http://example.org",
            "http://127.0.0.2",
            "http://127.0.0.1.evil.org",
            "http://localhost.evil.org",
            "http://[::2]",
        ] {
            assert!(matches!(check_server_url(plain), Err(crate::Error::Setup(SetupKind::PlainHttp(_)))), "{plain}");
        }
        for bad in [
            "",
            "ftp://x",
            "https://",
            "http://localhost@evil.org",
            "http://evil.org\\@localhost",
            "https://x/?a",
            "https://x/#a",
            "https://x y",
            "https://ex\u{e4}mple.org",
            "https://x:99999",
            "https://x:",
            "https://x:1a",
            "https://[::1",
            "http://[::1]x",
            "//localhost",
        ] {
            assert!(matches!(check_server_url(bad), Err(crate::Error::Setup(SetupKind::BadUrl(..)))), "{bad}");
        }
    }
}
