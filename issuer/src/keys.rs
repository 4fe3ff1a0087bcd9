//! The signing key: generated with the next free key id, private half written 0600, public half added to
//! the keyring file. `issuer keys generate` and the first start of `issuer serve` share this code.
//!
//! A key is created implicitly only on a first start, when there is no keyring and no private key file
//! at all. Once a key exists, a key file that cannot be loaded (unreadable, readable by others, corrupt,
//! wrong length, not the keyring's key) stops the issuer with an error naming the file: silently making a
//! new key would change the issuer's identity and invalidate every ticket already sold. A new key is made
//! on purpose with [`rotate`] (`issuer keys rotate`).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use scanner_core::{IssuerKey, KeyId, Keyring};

use crate::error::{Error, KeyFileKind, Result};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| KeyFileKind::Io { path: path.to_owned(), source }.into()
}

/// A keyring file scanner-core refuses (public data: the refusal may quote it).
fn keyring_refused(path: &Path) -> impl FnOnce(scanner_core::Error) -> Error + '_ {
    move |source| KeyFileKind::Key { path: path.to_owned(), source }.into()
}

/// Why scanner-core refused a private key file, in words that never quote the file: serde_json's
/// messages for a wrong type or value quote the offending JSON value, which in a key file may be the
/// seed, and an unsupported `format` is quoted too. Syntax errors quote nothing and keep their wording.
fn private_key_refusal(e: &scanner_core::Error) -> String {
    use scanner_core::error::KeyringKind;
    match e {
        scanner_core::Error::Keyring(KeyringKind::Json(json)) if json.is_data() => format!(
            "its JSON is invalid: not a private key file (wrong field type or value at line {} column {})",
            json.line(),
            json.column()
        ),
        scanner_core::Error::Keyring(KeyringKind::Format(_)) => {
            format!("unsupported format (expected {:?})", scanner_core::keyring::PRIVATE_KEY_FORMAT)
        }
        other => other.to_string(),
    }
}

/// The private key file name of a key id.
pub fn private_key_path(dir: &Path, kid: KeyId) -> PathBuf {
    dir.join(format!("issuer-key-{}.json", kid.0))
}

/// Loads a keyring file, or an empty keyring if the file does not exist.
pub fn load_keyring(path: &Path) -> Result<Keyring> {
    match std::fs::read_to_string(path) {
        Ok(s) => Keyring::from_json(&s).map_err(keyring_refused(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Keyring::new()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Writes a file atomically (temporary file + rename) with the given mode.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = open_mode(&tmp, mode, false).map_err(io(&tmp))?;
        f.write_all(content).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn open_mode(path: &Path, mode: u32, create_new: bool) -> std::io::Result<std::fs::File> {
    let mut opts = OpenOptions::new();
    opts.write(true);
    if create_new {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    opts.open(path)
}

/// Writes a secret file with mode 0600, refusing to overwrite an existing file.
pub fn write_secret_new(path: &Path, content: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut f = open_mode(path, 0o600, true).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileKind::Exists(path.to_owned()).into()
        } else {
            io(path)(e)
        }
    })?;
    f.write_all(content).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Generates a key with the keyring's next free key id, writes its private half 0600 into `out_dir`
/// (never overwriting) and adds its public half (valid from `not_before`) to the keyring file.
pub fn generate(keyring_path: &Path, out_dir: &Path, not_before: u64) -> Result<IssuerKey> {
    let mut ring = load_keyring(keyring_path)?;
    let kid = ring.next_key_id().map_err(keyring_refused(keyring_path))?;
    let key = IssuerKey::generate(kid);
    let private = private_key_path(out_dir, kid);
    write_secret_new(&private, key.to_private_json().as_bytes())?;
    ring.insert(key.public_entry(not_before, None)).map_err(keyring_refused(keyring_path))?;
    if let Some(dir) = keyring_path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    write_atomic(keyring_path, ring.to_json().as_bytes(), 0o644)?;
    tracing::info!(kid = kid.0, private = %private.display(), keyring = %keyring_path.display(), "generated signing key");
    Ok(key)
}

/// Loads the private key file of a keyring entry, strictly: any problem is an error naming the file.
pub fn load_private_key(path: &Path, entry: &scanner_core::PublicKeyEntry) -> Result<IssuerKey> {
    let bad = |why: String| Error::from(KeyFileKind::BadPrivateKey { path: path.to_owned(), why });
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".to_owned()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileKind::Permissions { path: path.to_owned(), mode }.into());
        }
    }
    let json = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let key = IssuerKey::from_private_json(&json).map_err(|e| bad(private_key_refusal(&e)))?;
    if key.key_id() != entry.key_id || key.verifying_key() != entry.key {
        return Err(bad(format!("it is not the private half of key {} in the keyring", entry.key_id)));
    }
    Ok(key)
}

/// The key new tickets are signed with: the keyring's newest key valid at `now`, loaded strictly from its
/// private file in `dir`.
pub fn load_signing_key(keyring: &Keyring, keyring_path: &Path, dir: &Path, now: u64) -> Result<IssuerKey> {
    let entry =
        keyring.newest_active(now).ok_or_else(|| KeyFileKind::NoValidKey { keyring: keyring_path.to_owned() })?;
    load_private_key(&private_key_path(dir, entry.key_id), entry)
}

/// Whether `dir` holds any private key file.
fn has_private_keys(dir: &Path) -> Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries {
        let name = entry.map_err(io(dir))?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("issuer-key-") && name.ends_with(".json") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Loads the signing key. Only on a first start (no keyring keys and no private key file) is a key
/// generated; any other failure is an error. Returns the key and the keyring.
pub fn load_or_generate(keyring_path: &Path, dir: &Path, now: u64) -> Result<(IssuerKey, Keyring)> {
    let ring = load_keyring(keyring_path)?;
    if ring.is_empty() {
        if has_private_keys(dir)? {
            return Err(KeyFileKind::OrphanKeys { dir: dir.to_owned(), keyring: keyring_path.to_owned() }.into());
        }
        let key = generate(keyring_path, dir, now)?;
        let ring = load_keyring(keyring_path)?;
        let loaded = load_signing_key(&ring, keyring_path, dir, now)?;
        if loaded.key_id() != key.key_id() {
            return Err(KeyFileKind::NoActiveKey { dir: dir.to_owned(), keyring: keyring_path.to_owned() }.into());
        }
        return Ok((loaded, ring));
    }
    let key = load_signing_key(&ring, keyring_path, dir, now)?;
    Ok((key, ring))
}

/// What [`rotate`] did.
#[derive(Debug)]
pub struct Rotation {
    pub new_key: KeyId,
    pub private: PathBuf,
    /// Keys whose window now ends at `until` (Unix seconds).
    pub retired: Vec<KeyId>,
    pub until: u64,
}

/// Rotates the signing key: a new key with the next key id (private file 0600 in `dir`, valid from
/// `now`) is added to the keyring, and every key still valid after `now + overlap_secs` gets that as its
/// `not_after`, so tickets and revocation lists they signed keep verifying through the overlap. The
/// issuer signs with the new key once restarted.
pub fn rotate(keyring_path: &Path, dir: &Path, now: u64, overlap_secs: u64) -> Result<Rotation> {
    let mut ring = load_keyring(keyring_path)?;
    if ring.is_empty() {
        return Err(KeyFileKind::NoValidKey { keyring: keyring_path.to_owned() }.into());
    }
    let kid = ring.next_key_id().map_err(keyring_refused(keyring_path))?;
    let key = IssuerKey::generate(kid);
    let until = now.saturating_add(overlap_secs);
    let retired: Vec<KeyId> =
        ring.entries().filter(|e| e.not_after.is_none_or(|end| end > until)).map(|e| e.key_id).collect();
    for old in &retired {
        ring.retire(*old, until);
    }
    ring.insert(key.public_entry(now, None)).map_err(keyring_refused(keyring_path))?;
    let private = private_key_path(dir, kid);
    write_secret_new(&private, key.to_private_json().as_bytes())?;
    write_atomic(keyring_path, ring.to_json().as_bytes(), 0o644)?;
    tracing::info!(kid = kid.0, retired = ?retired, until, keyring = %keyring_path.display(), "rotated signing key");
    Ok(Rotation { new_key: kid, private, retired, until })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key file kind of a failure (any other error fails the test).
    fn kind(err: Error) -> KeyFileKind {
        match err {
            Error::KeyFile(kind) => *kind,
            other => panic!("not a key file error: {other}"),
        }
    }

    #[test]
    fn generate_assigns_next_id_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let ring_path = dir.path().join("keyring.json");
        let k1 = generate(&ring_path, dir.path(), 0).unwrap();
        let k2 = generate(&ring_path, dir.path(), 0).unwrap();
        assert_eq!((k1.key_id(), k2.key_id()), (KeyId(1), KeyId(2)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(private_key_path(dir.path(), KeyId(1))).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            kind(write_secret_new(&private_key_path(dir.path(), KeyId(1)), b"x").unwrap_err()),
            KeyFileKind::Exists(_)
        ));
        let ring = load_keyring(&ring_path).unwrap();
        assert_eq!(load_signing_key(&ring, &ring_path, dir.path(), 10).unwrap().key_id(), KeyId(2));
    }

    #[test]
    fn broken_key_files_are_errors_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let ring_path = dir.path().join("keyring.json");
        let keys = dir.path().join("keys");
        let (first, _) = load_or_generate(&ring_path, &keys, 100).unwrap();
        assert_eq!(first.key_id(), KeyId(1));
        // A second start loads the same key.
        assert_eq!(load_or_generate(&ring_path, &keys, 200).unwrap().0.verifying_key(), first.verifying_key());
        let path = private_key_path(&keys, KeyId(1));
        let good = std::fs::read(&path).unwrap();
        let wrong_length = IssuerKey::from_seed(KeyId(1), [9; 32]).to_private_json().replace("\"}", "AAAA\"}");
        let other_key = IssuerKey::from_seed(KeyId(1), [9; 32]).to_private_json();
        for (content, expect) in [
            (&b"{not json"[..], "invalid"),
            (wrong_length.as_bytes(), "base64url"),
            (other_key.as_bytes(), "not the private half of key 1"),
        ] {
            std::fs::write(&path, content).unwrap();
            let err = kind(load_or_generate(&ring_path, &keys, 300).unwrap_err());
            let msg = err.to_string();
            assert!(matches!(err, KeyFileKind::BadPrivateKey { .. }), "{msg}");
            assert!(msg.contains(&path.display().to_string()) && msg.contains(expect), "{msg}");
        }
        std::fs::write(&path, &good).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                kind(load_or_generate(&ring_path, &keys, 300).unwrap_err()),
                KeyFileKind::Permissions { mode: 0o644, .. }
            ));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            kind(load_or_generate(&ring_path, &keys, 300).unwrap_err()),
            KeyFileKind::BadPrivateKey { .. }
        ));
        // A keyring lost while key files remain: no new key either.
        std::fs::write(&path, &good).unwrap();
        std::fs::remove_file(&ring_path).unwrap();
        assert!(matches!(kind(load_or_generate(&ring_path, &keys, 300).unwrap_err()), KeyFileKind::OrphanKeys { .. }));
        // In all of that, no second key was made.
        assert!(!private_key_path(&keys, KeyId(2)).exists());
    }

    /// A key file whose seed sits where serde_json or scanner-core would quote a value (a wrong type, the
    /// `format` field) is refused without the seed in the message or the debug output.
    #[test]
    fn a_refused_private_key_file_is_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let ring_path = dir.path().join("keyring.json");
        let keys = dir.path().join("keys");
        load_or_generate(&ring_path, &keys, 100).unwrap();
        let path = private_key_path(&keys, KeyId(1));
        let good: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let seed = good["seed"].as_str().unwrap().to_owned();
        assert!(seed.len() >= 40, "{seed}");
        let format = good["format"].as_str().unwrap();
        for (content, expect) in [
            (format!(r#"{{"format":"{format}","kid":"{seed}","seed":"{seed}"}}"#), "wrong field type or value"),
            (format!(r#"{{"format":"{format}","kid":1,"seed":["{seed}"]}}"#), "wrong field type or value"),
            (format!(r#"{{"format":"{seed}","kid":1,"seed":"{seed}"}}"#), "unsupported format"),
        ] {
            std::fs::write(&path, &content).unwrap();
            let err = load_or_generate(&ring_path, &keys, 300).unwrap_err();
            let (shown, debug) = (err.to_string(), format!("{err:?}"));
            assert!(shown.contains(expect) && shown.contains(&path.display().to_string()), "{shown}");
            assert!(!shown.contains(&seed) && !debug.contains(&seed), "{shown} / {debug}");
        }
    }

    #[test]
    fn rotate_adds_a_key_and_ends_the_old_window_after_the_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let ring_path = dir.path().join("keyring.json");
        let keys = dir.path().join("keys");
        load_or_generate(&ring_path, &keys, 100).unwrap();
        let r = rotate(&ring_path, &keys, 1_000, 3_600).unwrap();
        assert_eq!((r.new_key, r.retired.as_slice(), r.until), (KeyId(2), &[KeyId(1)][..], 4_600));
        let ring = load_keyring(&ring_path).unwrap();
        assert_eq!(ring.get(KeyId(1)).unwrap().not_after, Some(4_600));
        assert_eq!(ring.get(KeyId(2)).unwrap().not_before, 1_000);
        assert_eq!(load_or_generate(&ring_path, &keys, 1_001).unwrap().0.key_id(), KeyId(2));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&r.private).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
