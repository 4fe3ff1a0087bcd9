//! The signing key: generated with the next free key id, private half written 0600, public half added to
//! the keyring file. `issuer keys generate` and the first start of `issuer serve` share this code.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use scanner_core::{IssuerKey, KeyId, Keyring};

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Key { path: PathBuf, source: scanner_core::keyring::KeyError },
    #[error("{0} already exists; refusing to overwrite a private key")]
    Exists(PathBuf),
    #[error("no private key file in {dir} matches an active key of the keyring {keyring}")]
    NoActiveKey { dir: PathBuf, keyring: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io { path: path.to_owned(), source }
}

/// The private key file name of a key id.
pub fn private_key_path(dir: &Path, kid: KeyId) -> PathBuf {
    dir.join(format!("issuer-key-{}.json", kid.0))
}

/// Loads a keyring file, or an empty keyring if the file does not exist.
pub fn load_keyring(path: &Path) -> Result<Keyring, KeyFileError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Keyring::from_json(&s).map_err(|source| KeyFileError::Key { path: path.to_owned(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Keyring::new()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Writes a file atomically (temporary file + rename) with the given mode.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> Result<(), KeyFileError> {
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
pub fn write_secret_new(path: &Path, content: &[u8]) -> Result<(), KeyFileError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut f = open_mode(path, 0o600, true).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists(path.to_owned())
        } else {
            io(path)(e)
        }
    })?;
    f.write_all(content).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Generates a key with the keyring's next free key id, writes its private half 0600 into `out_dir`
/// (never overwriting) and adds its public half (valid from `not_before`) to the keyring file.
pub fn generate(keyring_path: &Path, out_dir: &Path, not_before: u64) -> Result<IssuerKey, KeyFileError> {
    let mut ring = load_keyring(keyring_path)?;
    let kid = ring.next_key_id().map_err(|source| KeyFileError::Key { path: keyring_path.to_owned(), source })?;
    let key = IssuerKey::generate(kid);
    let private = private_key_path(out_dir, kid);
    write_secret_new(&private, key.to_private_json().as_bytes())?;
    ring.insert(key.public_entry(not_before, None))
        .map_err(|source| KeyFileError::Key { path: keyring_path.to_owned(), source })?;
    if let Some(dir) = keyring_path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    write_atomic(keyring_path, ring.to_json().as_bytes(), 0o644)?;
    tracing::info!(kid = kid.0, private = %private.display(), keyring = %keyring_path.display(), "generated signing key");
    Ok(key)
}

/// The newest active key of the keyring whose private file is in `dir`.
pub fn load_signing_key(keyring: &Keyring, dir: &Path, now: u64) -> Option<IssuerKey> {
    let mut active: Vec<_> = keyring.entries().filter(|e| e.is_active(now)).collect();
    active.sort_by_key(|e| std::cmp::Reverse((e.not_before, e.key_id)));
    active.into_iter().find_map(|entry| {
        let json = std::fs::read_to_string(private_key_path(dir, entry.key_id)).ok()?;
        let key = IssuerKey::from_private_json(&json).ok()?;
        (key.verifying_key() == entry.key && key.key_id() == entry.key_id).then_some(key)
    })
}

/// Loads the signing key, generating one on first start. Returns the key and the keyring.
pub fn load_or_generate(keyring_path: &Path, dir: &Path, now: u64) -> Result<(IssuerKey, Keyring), KeyFileError> {
    let ring = load_keyring(keyring_path)?;
    if let Some(key) = load_signing_key(&ring, dir, now) {
        return Ok((key, ring));
    }
    let key = generate(keyring_path, dir, now)?;
    let ring = load_keyring(keyring_path)?;
    match load_signing_key(&ring, dir, now) {
        Some(loaded) if loaded.key_id() == key.key_id() => Ok((key, ring)),
        _ => Err(KeyFileError::NoActiveKey { dir: dir.to_owned(), keyring: keyring_path.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            write_secret_new(&private_key_path(dir.path(), KeyId(1)), b"x"),
            Err(KeyFileError::Exists(_))
        ));
        let ring = load_keyring(&ring_path).unwrap();
        assert_eq!(load_signing_key(&ring, dir.path(), 10).unwrap().key_id(), KeyId(2));
    }
}
