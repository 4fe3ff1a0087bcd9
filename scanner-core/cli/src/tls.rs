//! TLS for the venue hub: the hub's server certificate (the organizer's, or a self-signed one made once
//! and kept in the hub's data directory), and a device's HTTP client that accepts the hub's certificate
//! by its pinned SHA-256 only.
//!
//! The pin rule itself (parsing, constant-time compare) is scanner-core's [`CertPin`]; here is only the
//! rustls glue. The issuer and edge clients never use the pinned verifier: they keep webpki roots.

use std::fmt;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use scanner_core::setup::CertPin;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector, Transport, TransportAdapter,
};

/// At most this many bytes are read from a certificate or key PEM file (a chain of a few certificates is
/// a few KiB; anything larger is not a certificate).
const MAX_PEM_BYTES: u64 = 1 << 20;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The hub's certificate chain and key, ready to serve.
pub struct ServerIdentity {
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the end-entity certificate's DER: what devices pin.
    pub pin: CertPin,
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(bytes.len() as u64 <= MAX_PEM_BYTES, "{} is larger than a certificate or key file", path.display());
    Ok(bytes)
}

/// Loads a PEM certificate chain (end-entity first) and its PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_identity(cert: &Path, key: &Path) -> Result<ServerIdentity> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read_bounded(cert)?)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    let first = chain.first().with_context(|| format!("{} holds no certificate", cert.display()))?;
    let pin = CertPin::of_der(first);
    let key = PrivateKeyDer::from_pem_slice(&read_bounded(key)?)
        .with_context(|| format!("{} is not a PEM private key", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("no TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and the key do not go together")?;
    Ok(ServerIdentity { config: Arc::new(config), pin })
}

/// The self-signed certificate's files in the hub's directory.
pub fn self_signed_paths(hub_dir: &Path) -> (PathBuf, PathBuf) {
    (hub_dir.join("tls-cert.pem"), hub_dir.join("tls-key.pem"))
}

/// The hub's self-signed certificate: made on first use for `names` (IP addresses or DNS names) and
/// kept, so the fingerprint devices pinned stays valid across restarts. Existing files are reused as
/// they are (delete both to make a new one, then pin the new fingerprint on every device).
pub fn self_signed(hub_dir: &Path, names: &[String]) -> Result<ServerIdentity> {
    let (cert_path, key_path) = self_signed_paths(hub_dir);
    if !cert_path.exists() || !key_path.exists() {
        let key = rcgen::KeyPair::generate().context("cannot generate a key")?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).context("certificate parameters")?;
        for name in names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => rcgen::SanType::IpAddress(ip),
                Err(_) => rcgen::SanType::DnsName(
                    name.clone().try_into().with_context(|| format!("{name:?} is not a DNS name or IP address"))?,
                ),
            };
            params.subject_alt_names.push(san);
        }
        params.distinguished_name.push(rcgen::DnType::CommonName, "scanner venue hub");
        // Long enough for any event season; a pinned certificate is trusted by its hash, not its dates.
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2044, 1, 1);
        let cert = params.self_signed(&key).context("cannot sign the certificate")?;
        // The key first, private (0600) from creation; the certificate last, so a crash in between leaves
        // no certificate without its key.
        crate::hub::write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
        crate::hub::write_file(&cert_path, cert.pem().as_bytes(), false)?;
        tracing::info!(path = %cert_path.display(), "made the hub's self-signed certificate");
    }
    load_identity(&cert_path, &key_path)
}

/// Accepts exactly the pinned certificate (scanner-core's rule); signatures are still checked with the
/// certificate's key, so only the holder of the pinned certificate's private key can complete a handshake.
#[derive(Debug)]
struct PinnedVerifier {
    pin: CertPin,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pin.matches(end_entity) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the hub's certificate fingerprint {} does not match the pinned {} (--hub-cert-sha256)",
                CertPin::of_der(end_entity).to_hex(),
                self.pin.to_hex()
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// ureq's TLS step, with the pinned verifier instead of webpki roots.
struct PinnedTlsConnector {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for PinnedTlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedTlsConnector").finish()
    }
}

impl<In: Transport> Connector<In> for PinnedTlsConnector {
    type Out = Either<In, PinnedTlsTransport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Err(ureq::Error::Tls("no connection to wrap in TLS"));
        };
        // A pinned hub URL is https (checked when stored); plain http is passed through unchanged only so
        // the error the server gives is the one the user sees.
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned()).map_err(|_| ureq::Error::Tls("bad hub host name"))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        // The handshake completes (and the pin is checked) before any request byte is written.
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(PinnedTlsTransport { buffers, stream: StreamOwned { conn, sock } })))
    }
}

struct PinnedTlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for PinnedTlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedTlsTransport").finish()
    }
}

impl Transport for PinnedTlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// A blocking HTTP client: with a pin (a venue hub's), it accepts the hub's certificate if and only if its DER
/// SHA-256 equals the pin; without, it is the ordinary client (webpki roots).
pub fn http_agent(timeout: Duration, pin: Option<CertPin>) -> Result<ureq::Agent> {
    let config = ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build();
    let Some(pin) = pin else {
        return Ok(config.into());
    };
    let provider = provider();
    let tls = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("no TLS versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedVerifier { pin, provider }))
        .with_no_client_auth();
    let connector = TcpConnector::default().chain(PinnedTlsConnector { config: Arc::new(tls) });
    Ok(ureq::Agent::with_parts(config, connector, DefaultResolver::default()))
}
