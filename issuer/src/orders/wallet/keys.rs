//! The wallets' key material, read and checked once at start-up: the part of the wallets the application
//! state holds. It knows files, certificates and keys, not orders: the passes and links are made from
//! them in [`super::apple`] and [`super::google`].

use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use serde::Deserialize;

use crate::config::Config;
use crate::error::{Error, KeyFileKind, Result, StartKind};

/// The wallets this issuer signs for, loaded at start-up.
#[derive(Default)]
pub struct Wallet {
    pub apple: Option<PassSigner>,
    pub google: Option<SaveLinkSigner>,
}

/// Hand-written so that a `{:?}` never prints key material: it says which wallets are on.
impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet").field("apple", &self.apple.is_some()).field("google", &self.google.is_some()).finish()
    }
}

impl Wallet {
    /// Reads and checks the configured certificates and keys. A wallet whose settings are all absent is
    /// off; one whose settings are only partly given is a start-up error listing what is missing.
    pub fn from_config(config: &Config) -> Result<Self> {
        let apple = match (
            &config.apple_pass_type_id,
            &config.apple_team_id,
            &config.apple_pass_cert,
            &config.apple_pass_key,
            &config.apple_wwdr_cert,
        ) {
            (None, None, None, None, None) => None,
            (Some(pass_type_id), Some(team_id), Some(cert), Some(key), Some(wwdr)) => Some(PassSigner::load(
                PassIdentity {
                    pass_type_id: pass_type_id.clone(),
                    team_id: team_id.clone(),
                    organization: config.wallet_organization.clone(),
                },
                cert,
                key,
                wwdr,
            )?),
            _ => {
                return Err(StartKind::Wallet(
                    "Apple Wallet needs all of --apple-pass-type-id, --apple-team-id, --apple-pass-cert, \
                     --apple-pass-key and --apple-wwdr-cert"
                        .to_owned(),
                )
                .into())
            }
        };
        let google = match (&config.google_wallet_issuer_id, &config.google_wallet_key) {
            (None, None) => None,
            (Some(issuer_id), Some(key)) => Some(SaveLinkSigner::load(issuer_id, key, &config.wallet_organization)?),
            _ => {
                return Err(StartKind::Wallet(
                    "Google Wallet needs both --google-wallet-issuer-id and --google-wallet-key".to_owned(),
                )
                .into())
            }
        };
        Ok(Wallet { apple, google })
    }
}

/// Who the passes are from: the identifiers of the organizer's Apple developer account and the name the
/// pass shows.
#[derive(Debug, Clone)]
pub struct PassIdentity {
    /// `pass.org.example.tickets`: the Pass Type ID the certificate was issued for.
    pub pass_type_id: String,
    /// The 10-character Team ID of the Apple developer account.
    pub team_id: String,
    pub organization: String,
}

/// Signs passes with the organizer's pass certificate; read once at start-up.
pub struct PassSigner {
    pub(super) identity: PassIdentity,
    pub(super) cert: X509,
    pub(super) key: PKey<Private>,
    pub(super) wwdr: X509,
}

impl PassSigner {
    /// Reads the pass certificate, its private key (a file only its owner may read) and the WWDR
    /// certificate, all PEM, and checks that the key is the certificate's and the certificate has not
    /// expired (Wallet refuses passes signed with an expired certificate).
    pub fn load(identity: PassIdentity, cert_path: &Path, key_path: &Path, wwdr_path: &Path) -> Result<Self> {
        let cert = X509::from_pem(&read_file(cert_path)?)
            .map_err(|e| unusable(cert_path, "Apple pass certificate (PEM)", e))?;
        check_private_file(key_path)?;
        let key = PKey::private_key_from_pem(&read_file(key_path)?)
            .map_err(|e| unusable(key_path, "Apple pass certificate's private key (unencrypted PEM)", e))?;
        let wwdr = X509::from_pem(&read_file(wwdr_path)?)
            .map_err(|e| unusable(wwdr_path, "Apple WWDR intermediate certificate (PEM)", e))?;
        let public = cert.public_key().map_err(|e| unusable(cert_path, "Apple pass certificate (PEM)", e))?;
        if !public.public_eq(&key) {
            return Err(unusable(
                key_path,
                "Apple pass certificate's private key (unencrypted PEM)",
                format!("it is not the private key of the certificate {}", cert_path.display()),
            ));
        }
        let now = Asn1Time::days_from_now(0).map_err(Error::internal)?;
        if cert.not_after() < now {
            return Err(unusable(cert_path, "Apple pass certificate (PEM)", format!("expired {}", cert.not_after())));
        }
        Ok(PassSigner { identity, cert, key, wwdr })
    }
}

/// The two fields of a service-account key file (JSON, as the Google Cloud console downloads it) that
/// signing needs; the others are ignored.
#[derive(Deserialize)]
struct ServiceAccountKey {
    client_email: String,
    private_key: String,
}

/// Signs save links with the service account's key; read once at start-up.
pub struct SaveLinkSigner {
    pub(super) issuer_id: String,
    pub(super) client_email: String,
    pub(super) key: PKey<Private>,
    pub(super) organization: String,
}

impl SaveLinkSigner {
    /// Reads the service-account key file (only its owner may read it: it holds the private key) and
    /// checks the issuer id (Google's, all digits) and that the key is an RSA key (RS256).
    pub fn load(issuer_id: &str, key_path: &Path, organization: &str) -> Result<Self> {
        if issuer_id.is_empty() || !issuer_id.bytes().all(|b| b.is_ascii_digit()) || issuer_id.len() > 32 {
            return Err(StartKind::Wallet(
                "--google-wallet-issuer-id must be the issuer id the Google Pay & Wallet console shows (digits)"
                    .to_owned(),
            )
            .into());
        }
        const WHAT: &str = "Google Wallet service-account key (JSON)";
        check_private_file(key_path)?;
        // serde's message could quote a value of the file; only its position is reported.
        let account: ServiceAccountKey = serde_json::from_slice(&read_file(key_path)?).map_err(|e| {
            unusable(
                key_path,
                WHAT,
                format!("no client_email and private_key strings (line {}, column {})", e.line(), e.column()),
            )
        })?;
        if account.client_email.trim().is_empty() {
            return Err(unusable(key_path, WHAT, "client_email is empty"));
        }
        let key = PKey::private_key_from_pem(account.private_key.as_bytes())
            .map_err(|e| unusable(key_path, WHAT, format!("private_key: {e}")))?;
        if key.rsa().is_err() {
            return Err(unusable(key_path, WHAT, "private_key is not an RSA key (RS256 needs one)"));
        }
        Ok(SaveLinkSigner {
            issuer_id: issuer_id.to_owned(),
            client_email: account.client_email,
            key,
            organization: organization.to_owned(),
        })
    }
}

/// Refuses a private key file that group or others may read, as the ticket-signing key is refused.
fn check_private_file(path: &std::path::Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|source| KeyFileKind::Io { path: path.to_owned(), source })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileKind::Permissions { path: path.to_owned(), mode }.into());
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}

/// Reads a wallet file; failures name the file only.
fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| KeyFileKind::Io { path: path.to_owned(), source }.into())
}

/// A wallet file that was read but cannot be used: `what` it should be, and why not (OpenSSL's reason,
/// which never quotes the key).
fn unusable(path: &std::path::Path, what: &'static str, why: impl std::fmt::Display) -> Error {
    KeyFileKind::Wallet { what, path: path.to_owned(), why: why.to_string() }.into()
}
