//! Backup and restore of an issuer's data directory (`issuer backup`, `issuer restore`).
//!
//! A backup is one tar file holding everything the issuer needs to carry on where it stood: the SQLite
//! database (orders, tickets, catalog, outbox, revocations, staff, the redemption sync logs), the signing
//! keys and keyring and the secrets (admin token, link secret, ...). It is taken **online**: the issuer
//! keeps selling while it runs.
//!
//! - The database is copied with SQLite's online backup API in a single step, which reads one consistent
//!   snapshot (in WAL mode a reader never blocks the writer, and the writer never tears the snapshot).
//!   Copying the `.sqlite3` file with `cp` instead can capture a half-written page.
//! - Every other file is copied as it is (each through one open handle), including an old file-backed
//!   redemption log not yet imported into the database (append-only with fsync'd chunks: a copy taken
//!   mid-append is what a crash at that instant leaves behind; devices resend anything newer).
//! - The first entry, `BACKUP.json`, lists every file with its size and SHA-256. Restore checks each
//!   one, so a damaged or truncated archive is refused before anything is written.
//! - The archive holds private keys: it is written with mode 0600, under a temporary name that is renamed
//!   only once it is complete and fsync'd, so a failed backup never leaves a half file where the last
//!   good one was.
//!
//! Restore writes into a new directory next to the target and renames it into place at the end, so a
//! refused or interrupted restore leaves nothing half-restored. It refuses a target that exists and is not
//! empty: restoring over a live data directory would mix two histories. All restored files are 0600 and
//! directories 0700, as the issuer creates them.
//!
//! PostgreSQL deployments back up the database with `pg_dump` instead (see `deploy/README.md`); this
//! command covers the embedded SQLite store and the files beside it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The database file inside a data directory (see [`crate::db::Db::open`]).
const DATABASE: &str = "issuer.sqlite3";
/// The archive's table of contents, always its first entry.
const CONTENTS: &str = "BACKUP.json";
/// What this code writes and reads.
const FORMAT: &str = "offline-tickets/issuer-backup/v1";
/// Largest single file restore accepts (a bound against a hostile archive filling the disk).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024 * 1024;
/// Most files restore accepts.
const MAX_FILES: usize = 100_000;

/// One file of the backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupFile {
    /// Path relative to the data directory, `/`-separated.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The archive's table of contents (`BACKUP.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contents {
    pub format: String,
    /// Unix seconds at which the database snapshot was taken.
    pub created_at: u64,
    pub files: Vec<BackupFile>,
}

/// What a backup or restore did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub files: usize,
    pub bytes: u64,
    pub created_at: u64,
}

/// Refuses a PostgreSQL store: `issuer backup` and `issuer restore` copy the SQLite file with SQLite's
/// own API, and a PostgreSQL database has its own consistent online dump. `database_url` is the issuer's
/// `--database-url` / `DATABASE_URL` (None: the SQLite file in the data directory).
pub fn require_sqlite(database_url: Option<&str>) -> Result<()> {
    match database_url.map(crate::db::Backend::of_url) {
        None | Some(Some(crate::db::Backend::Sqlite)) => Ok(()),
        Some(Some(crate::db::Backend::Postgres)) => Err(Error::validation(
            "database_url",
            "this issuer stores its data in PostgreSQL: back the database up with `pg_dump --format=custom` and \
             restore it with `pg_restore` (see deploy/README.md); `issuer backup` covers the SQLite store only",
        )),
        Some(None) => Err(Error::validation("database_url", "not a sqlite:// or postgres:// URL")),
    }
}

/// Backs up `data_dir` into the archive `to` (see the module docs).
pub fn backup(data_dir: &Path, to: &Path, now: u64) -> Result<Summary> {
    let database = data_dir.join(DATABASE);
    if !database.is_file() {
        return Err(Error::BadRequest(format!(
            "{} holds no {DATABASE}: is it the issuer's data directory (issuer serve --data-dir)?",
            data_dir.display()
        )));
    }
    let parent = to.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // The snapshot is written next to the archive, not into the data directory the issuer is using.
    let staging = tempfile::Builder::new().prefix(".issuer-backup-").tempdir_in(parent).map_err(storage)?;
    let snapshot = staging.path().join(DATABASE);
    snapshot_database(&database, &snapshot)?;

    let mut live = Vec::new();
    collect_files(data_dir, data_dir, &mut live)?;
    // Each file is copied once into the staging directory (through one open handle, so a log compacted
    // and replaced meanwhile is either the old or the new file, never a mix), then hashed and archived
    // from that copy: what BACKUP.json lists is exactly what the archive holds.
    let mut sources: Vec<(String, PathBuf)> = vec![(DATABASE.to_string(), snapshot)];
    for (i, (path, source)) in live.into_iter().enumerate() {
        let copy = staging.path().join(format!("file-{i}"));
        let mut from = File::open(&source).map_err(storage)?;
        let mut to = private_file(&copy)?;
        io::copy(&mut from, &mut to).map_err(storage)?;
        sources.push((path, copy));
    }
    let mut files = Vec::with_capacity(sources.len());
    for (path, source) in &sources {
        let (bytes, sha256) = hash_file(source)?;
        files.push(BackupFile { path: path.clone(), bytes, sha256 });
    }
    let contents = Contents { format: FORMAT.to_string(), created_at: now, files };

    let tmp =
        parent.join(format!(".{}.partial", to.file_name().and_then(|n| n.to_str()).unwrap_or("issuer-backup.tar")));
    // A partial file left by an earlier failed run is ours to replace.
    let _ = fs::remove_file(&tmp);
    let written = write_archive(&tmp, &contents, &sources).and_then(|()| fs::rename(&tmp, to).map_err(storage));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(parent);
    Ok(Summary { files: contents.files.len(), bytes: contents.files.iter().map(|f| f.bytes).sum(), created_at: now })
}

fn write_archive(tmp: &Path, contents: &Contents, sources: &[(String, PathBuf)]) -> Result<()> {
    let mut tar = tar::Builder::new(private_file(tmp)?);
    let toc = serde_json::to_vec_pretty(contents).map_err(Error::internal)?;
    append(&mut tar, CONTENTS, &mut toc.as_slice(), toc.len() as u64)?;
    for ((path, source), listed) in sources.iter().zip(&contents.files) {
        let file = File::open(source).map_err(storage)?;
        append(&mut tar, path, &mut file.take(listed.bytes), listed.bytes)?;
    }
    let out = tar.into_inner().map_err(storage)?;
    out.sync_all().map_err(storage)
}

/// Restores the archive `from` into `data_dir`, which must not exist or be empty.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Summary> {
    if let Ok(mut entries) = fs::read_dir(data_dir) {
        if entries.next().is_some() {
            return Err(Error::Conflict(format!(
                "{} is not empty: restore into a new directory (move the old one aside first)",
                data_dir.display()
            )));
        }
    }
    let parent = data_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(storage)?;
    let staging = tempfile::Builder::new().prefix(".issuer-restore-").tempdir_in(parent).map_err(storage)?;
    let summary = unpack(from, staging.path())?;
    check_database(&staging.path().join(DATABASE))?;
    set_mode(staging.path(), 0o700)?;
    // An empty target directory is replaced; a missing one is created by the rename.
    if data_dir.exists() {
        fs::remove_dir(data_dir).map_err(storage)?;
    }
    let staged = staging.keep();
    fs::rename(&staged, data_dir).map_err(storage)?;
    sync_dir(parent);
    Ok(summary)
}

/// Reads and checks the whole archive into `dir` (a fresh staging directory).
fn unpack(from: &Path, dir: &Path) -> Result<Summary> {
    let file = File::open(from).map_err(|e| damaged(format!("cannot open {}: {e}", from.display())))?;
    let mut archive = tar::Archive::new(file);
    let mut entries = archive.entries().map_err(|e| damaged(e.to_string()))?;
    let contents: Contents = {
        let mut first = entries.next().ok_or_else(|| damaged("empty archive"))?.map_err(|e| damaged(e.to_string()))?;
        if entry_path(&first)? != CONTENTS {
            return Err(damaged("the first entry is not BACKUP.json"));
        }
        let mut json = Vec::new();
        (&mut first).take(16 * 1024 * 1024).read_to_end(&mut json).map_err(|e| damaged(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| damaged(format!("BACKUP.json: {e}")))?
    };
    if contents.format != FORMAT {
        return Err(damaged(format!("format {:?}, this issuer reads {FORMAT:?}", contents.format)));
    }
    if contents.files.len() > MAX_FILES {
        return Err(damaged("too many files"));
    }
    if !contents.files.iter().any(|f| f.path == DATABASE) {
        return Err(damaged("no database in the archive"));
    }
    let mut seen = std::collections::HashSet::new();
    for listed in &contents.files {
        let mut entry = entries
            .next()
            .ok_or_else(|| damaged(format!("truncated: {} is missing", listed.path)))?
            .map_err(|e| damaged(e.to_string()))?;
        let path = entry_path(&entry)?;
        if path != listed.path || !seen.insert(path.clone()) {
            return Err(damaged(format!("entry {path:?} is not the listed {:?}", listed.path)));
        }
        if listed.bytes > MAX_FILE_BYTES || entry.header().entry_size().ok() != Some(listed.bytes) {
            return Err(damaged(format!("{path}: size differs from BACKUP.json")));
        }
        let target = dir.join(relative(&path)?);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(storage)?;
            set_mode(parent, 0o700)?;
        }
        let mut out = private_file(&target)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(|e| damaged(e.to_string()))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(storage)?;
        }
        if total != listed.bytes || hex::encode(hasher.finalize()) != listed.sha256 {
            return Err(damaged(format!("{path}: contents differ from BACKUP.json (damaged archive)")));
        }
        out.sync_all().map_err(storage)?;
    }
    if entries.next().is_some() {
        return Err(damaged("entries beyond those BACKUP.json lists"));
    }
    Ok(Summary {
        files: contents.files.len(),
        bytes: contents.files.iter().map(|f| f.bytes).sum(),
        created_at: contents.created_at,
    })
}

/// One consistent copy of the live database through SQLite's online backup API.
fn snapshot_database(database: &Path, snapshot: &Path) -> Result<()> {
    let source = rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    source.busy_timeout(std::time::Duration::from_secs(10)).map_err(sqlite)?;
    let mut copy = rusqlite::Connection::open(snapshot).map_err(sqlite)?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut copy).map_err(sqlite)?;
        // -1: every page in one step, i.e. inside one read transaction, so the copy is one snapshot even
        // while the issuer writes. Busy/Locked (a checkpoint holding the file) is retried for a while.
        let mut waited = std::time::Duration::ZERO;
        loop {
            match backup.step(-1).map_err(sqlite)? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => continue,
                _ if waited < std::time::Duration::from_secs(30) => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    waited += std::time::Duration::from_millis(50);
                }
                _ => return Err(Error::Storage("the database stayed locked for 30 s; try again".into())),
            }
        }
    }
    // A self-contained file: no -wal beside it to forget.
    copy.pragma_update(None, "journal_mode", "DELETE").map_err(sqlite)?;
    drop(copy);
    set_mode(snapshot, 0o600)
}

/// The restored database must be a sound SQLite file.
fn check_database(path: &Path) -> Result<()> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite)?;
    let verdict: String =
        conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).map_err(|e| damaged(e.to_string()))?;
    if verdict != "ok" {
        return Err(damaged(format!("the database fails SQLite's integrity check: {verdict}")));
    }
    Ok(())
}

/// Every regular file of the data directory except the live database files, sorted by path.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir).map_err(storage)?.collect::<io::Result<_>>().map_err(storage)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(storage)?;
        let Ok(rel) = path.strip_prefix(root) else { continue };
        let name: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        let name = name.join("/");
        if kind.is_dir() {
            collect_files(root, &path, out)?;
        } else if kind.is_file() && !is_live_database(&name) {
            out.push((name, path));
        }
        // Symlinks and special files are not the issuer's: skipped.
    }
    Ok(())
}

fn is_live_database(name: &str) -> bool {
    name.starts_with(DATABASE) // issuer.sqlite3, -wal, -shm, -journal
}

fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).map_err(storage)?;
    let mut hasher = Sha256::new();
    let bytes = io::copy(&mut file, &mut hasher).map_err(storage)?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

fn append(tar: &mut tar::Builder<File>, path: &str, data: &mut impl Read, size: u64) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(0);
    tar.append_data(&mut header, path, data).map_err(storage)
}

/// An entry's path as `/`-separated text, refused unless it is plain and relative.
fn entry_path<R: Read>(entry: &tar::Entry<R>) -> Result<String> {
    let path = entry.path().map_err(|e| damaged(e.to_string()))?;
    let text = path.to_str().ok_or_else(|| damaged("a path that is not UTF-8"))?.to_string();
    if entry.header().entry_type() != tar::EntryType::Regular {
        return Err(damaged(format!("{text:?} is not a regular file")));
    }
    relative(&text)?;
    Ok(text)
}

/// `path` as a relative path with only normal components (no `..`, no root, no drive).
fn relative(path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    if path.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(damaged(format!("unsafe path {path:?} in the archive")));
    }
    Ok(p.to_path_buf())
}

fn private_file(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(storage)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(storage)?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Makes a rename durable; best effort (not every filesystem allows fsync on a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn storage(e: io::Error) -> Error {
    Error::Storage(e.to_string())
}

fn sqlite(e: rusqlite::Error) -> Error {
    Error::Storage(format!("sqlite: {e}"))
}

fn damaged(why: impl Into<String>) -> Error {
    Error::BadRequest(format!("not a usable issuer backup: {}", why.into()))
}
