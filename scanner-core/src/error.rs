//! scanner-core's one error type.
//!
//! Every public fallible function of the library returns [`Result<T>`](Result), whose error is [`Error`].
//! A caller that only reports a failure uses its `Display` (the steward's or operator's message); a
//! caller that acts on one case matches on the variant for the part of the library that failed and then
//! on that part's *kind*:
//!
//! ```
//! use scanner_core::error::{Error, KeyringKind};
//! use scanner_core::Keyring;
//!
//! let refused = Keyring::from_json("not a keyring").unwrap_err();
//! assert!(matches!(refused, Error::Keyring(KeyringKind::Json(_))));
//! assert!(refused.to_string().starts_with("keyring JSON is invalid"));
//! ```
//!
//! Why one type: a single `?` composes calls across the library (a device sets its keyring, revocation
//! list, gate rules and syncs in one function), callers hold one type whatever they call, and what can
//! fail is listed in one place. The kinds ([`SyncKind`], [`DeviceKind`], ...) are the variants' payloads
//! and nothing returns them on their own; they live with the code that produces them and are re-exported
//! here. Each variant displays exactly its kind's message (`transparent`), so what stewards, operators and
//! HTTP error bodies show is the kind's wording.

pub use crate::base45::Base45Kind;
pub use crate::gates::GateRulesKind;
pub use crate::keyring::KeyringKind;
pub use crate::manifest::ManifestKind;
#[cfg(feature = "files")]
pub use crate::qr::decode::DecodeKind;
pub use crate::qr::render::RenderKind;
pub use crate::redemption::decision::UndoKind;
pub use crate::redemption::device::DeviceKind;
pub use crate::redemption::document::{LogKind, SyncKind};
pub use crate::redemption::record::RecordKind;
#[cfg(feature = "server-log")]
pub use crate::redemption::sync_log::ServerLogKind;
pub use crate::revocation::RevocationKind;
pub use crate::setup::SetupKind;
pub use crate::supervisor::PassKind;
pub use crate::ticket::FormatKind;
pub use crate::wire::{EdgeReplyKind, RequestKind};

/// `Result` with scanner-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can fail in scanner-core: which part failed (the variant) and how (its kind).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A text or bytes are not a well-formed ticket (see `docs/ticket-format.md`); `verify::Refusal`
    /// converts the kind into what the door shows.
    #[error(transparent)]
    Format(#[from] FormatKind),
    /// Base45 text that does not decode.
    #[error(transparent)]
    Base45(#[from] Base45Kind),
    /// A keyring, a private key file or a keyring pin is refused, or signing with a key is.
    #[error(transparent)]
    Keyring(#[from] KeyringKind),
    /// A revocation list or update is refused (bad signature, rollback, gap, ...).
    #[error(transparent)]
    Revocation(#[from] RevocationKind),
    /// A holder manifest or one of its entries is refused.
    #[error(transparent)]
    Manifest(#[from] ManifestKind),
    /// Gate rules are refused.
    #[error(transparent)]
    GateRules(#[from] GateRulesKind),
    /// A device setup link or server URL is refused (shown to the steward as is).
    #[error(transparent)]
    Setup(#[from] SetupKind),
    /// A supervisor pass is refused or cannot be signed.
    #[error(transparent)]
    Pass(#[from] PassKind),
    /// A redeem request body is refused (an HTTP 400 at the edge).
    #[error(transparent)]
    Request(#[from] RequestKind),
    /// The edge's reply cannot be used (the scanner decides offline instead).
    #[error(transparent)]
    EdgeReply(#[from] EdgeReplyKind),
    /// Bytes are not a valid 32-byte scan record.
    #[error(transparent)]
    Record(#[from] RecordKind),
    /// The redemption log refused a document, a merge or a local append.
    #[error(transparent)]
    Log(#[from] LogKind),
    /// A sync message (or a peer's sync state) is refused; the log and sync state are unchanged.
    #[error(transparent)]
    Sync(#[from] SyncKind),
    /// A supervisor's undo cannot be recorded.
    #[error(transparent)]
    Undo(#[from] UndoKind),
    /// The scanning device (or its sled store) cannot do what was asked: not set up, no keyring, storage
    /// failed, sync transport failed, ...
    #[error(transparent)]
    Device(#[from] DeviceKind),
    /// A text cannot be rendered as a QR code.
    #[error(transparent)]
    Render(#[from] RenderKind),
    /// A sync server's file-backed log failed (feature `server-log`): storage, damage, ownership.
    #[cfg(feature = "server-log")]
    #[error(transparent)]
    ServerLog(#[from] ServerLogKind),
    /// An image file cannot be read (feature `files`).
    #[cfg(feature = "files")]
    #[error(transparent)]
    Decode(#[from] DecodeKind),
    /// The decode corpus cannot be written (features `files` and `test-support`).
    #[cfg(all(feature = "files", any(test, feature = "test-support")))]
    #[error(transparent)]
    Corpus(#[from] crate::qr::corpus::CorpusKind),
}

/// The sled store's failures are the device's (`?` on a sled call in the store).
#[cfg(feature = "store")]
impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Device(DeviceKind::Sled(e))
    }
}

/// automerge's failures are the redemption log's (`?` on an automerge call in the document).
impl From<automerge::AutomergeError> for Error {
    fn from(e: automerge::AutomergeError) -> Self {
        Error::Log(LogKind::from(e))
    }
}
