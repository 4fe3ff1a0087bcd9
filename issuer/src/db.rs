//! The store: SQLite (the embedded default: a file in the data directory, in WAL mode) or PostgreSQL (for
//! several issuer instances behind a load balancer), chosen by the database URL; migrations run at start.
//!
//! Both go through sqlx's `Any` driver, so every query is written once, in SQL both dialects run: `$n`
//! placeholders, `ON CONFLICT`, `RETURNING`, times computed in Rust, integers that decode as `i64`
//! (PostgreSQL's schema uses BIGINT throughout, and sums are cast back to BIGINT). Booleans are the one
//! type the two drivers hand back differently (SQLite: an integer; PostgreSQL: a bool), hence [`Flag`].
//!
//! On SQLite, writes go through a pool of exactly one connection, so write transactions queue in-process
//! instead of contending for SQLite's lock; reads use a separate pool of read-only connections that WAL
//! lets run concurrently with the writer. On PostgreSQL one pool serves both. Capacity checks never rely on
//! SQLite's serialisation: reservations are conditional `UPDATE`s, which PostgreSQL re-checks against the
//! committed row when two transactions race (READ COMMITTED), and the few read-then-write sequences lock
//! their row first (`FOR UPDATE`, a no-op under SQLite's single writer).

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyTypeInfo, AnyTypeInfoKind};
use sqlx::{Any, AnyPool, Decode, Executor as _, Type, ValueRef};

use crate::config::Synchronous;
use crate::error::{Error, Result};

/// A transaction on either store.
pub type Tx<'c> = sqlx::Transaction<'c, Any>;
/// One connection (or the connection of a transaction) on either store.
pub type Conn = sqlx::AnyConnection;

/// Which database the URL named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names, or None for any other scheme.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

#[derive(Clone, Debug)]
pub struct Db {
    /// Writes: the single writer connection on SQLite; the shared pool on PostgreSQL.
    pub write: AnyPool,
    /// Reads: read-only connections on SQLite; the same pool as `write` on PostgreSQL.
    pub read: AnyPool,
    pub backend: Backend,
}

/// The SQLite file of a data directory, the store used when no database URL is given.
pub fn default_sqlite_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("issuer.sqlite3")
}

impl Db {
    /// Opens the store named by `url` (default: the SQLite file in `data_dir`) and runs its migrations.
    /// `sync` applies to SQLite only (PostgreSQL's durability is the server's `synchronous_commit`).
    pub async fn open(url: Option<&str>, data_dir: &Path, sync: Synchronous) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let url = match url {
            Some(u) => u.to_owned(),
            None => format!("sqlite://{}", default_sqlite_path(data_dir).display()),
        };
        match Backend::of_url(&url) {
            Some(Backend::Sqlite) => Self::open_sqlite(&url, sync).await,
            Some(Backend::Postgres) => Self::open_postgres(&url).await,
            // The URL itself may carry a password: only its scheme goes into the message.
            None => Err(Error::Internal(format!(
                "unsupported database URL scheme {:?}: use sqlite://FILE or postgres://…",
                url.split(':').next().unwrap_or_default()
            ))),
        }
    }

    async fn open_sqlite(url: &str, sync: Synchronous) -> Result<Self> {
        // The Any driver builds SQLite's options from the URL alone, so the pragmas are set on every new
        // connection here. `mode=rwc` creates the file on first start; readers open it read-only.
        let (path, _) = url.split_once('?').unwrap_or((url, ""));
        let (reader_pragmas, writer_pragmas): (&'static str, &'static str) = match sync {
            Synchronous::Full => (
                "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
            ),
            Synchronous::Normal => (
                "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
            ),
        };
        let write = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| Box::pin(async move { conn.execute(writer_pragmas).await.map(drop) }))
            .connect(&format!("{path}?mode=rwc"))
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&write)
            .await
            .map_err(|e| Error::Internal(format!("migration failed: {e}")))?;
        let read = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| Box::pin(async move { conn.execute(reader_pragmas).await.map(drop) }))
            .connect(&format!("{path}?mode=ro"))
            .await?;
        Ok(Self { write, read, backend: Backend::Sqlite })
    }

    async fn open_postgres(url: &str) -> Result<Self> {
        let url = if url.contains("statement-cache-capacity=") {
            url.to_owned()
        } else {
            let joiner = if url.contains('?') { '&' } else { '?' };
            format!("{url}{joiner}statement-cache-capacity={PG_STATEMENT_CACHE}")
        };
        let pool =
            AnyPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(30)).connect(&url).await?;
        // Several instances may start at once: sqlx's PostgreSQL migrator takes an advisory lock, so
        // one runs the migrations and the others wait and find them applied.
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| Error::Internal(format!("migration failed: {e}")))?;
        Ok(Self { write: pool.clone(), read: pool, backend: Backend::Postgres })
    }

    /// The store's durability settings as the database reports them on the connection orders are written
    /// through — not as they were asked for — so an operator or the bench can see what a commit really
    /// waits for. SQLite: `synchronous` (off, normal, full, extra) and `journal_mode` of the writer;
    /// PostgreSQL: the server's `fsync` and `synchronous_commit`.
    pub async fn durability(&self) -> Result<serde_json::Value> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let mut conn = self.write.acquire().await?;
                let level: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *conn).await?;
                let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await?;
                let synchronous = match level {
                    0 => "off".to_owned(),
                    1 => "normal".to_owned(),
                    2 => "full".to_owned(),
                    3 => "extra".to_owned(),
                    other => other.to_string(),
                };
                serde_json::json!({ "backend": "sqlite", "synchronous": synchronous, "journal_mode": journal })
            }
            Backend::Postgres => {
                let mut conn = self.write.acquire().await?;
                let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&mut *conn).await?;
                let commit: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&mut *conn).await?;
                serde_json::json!({ "backend": "postgres", "fsync": fsync, "synchronous_commit": commit })
            }
        })
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// Locks the event's row until the transaction on `conn` ends, for a read-then-write that must not
/// interleave with another one on the same event (the next free index of a ticket type or add-on, the
/// per-address ticket cap). On PostgreSQL the no-op `UPDATE` takes the row lock that a concurrent
/// transaction — of this instance or another — waits for; SQLite's single writer serialises anyway. One
/// statement both dialects run, instead of `SELECT … FOR UPDATE`, which SQLite does not parse.
pub async fn lock_event(conn: &mut Conn, event_id: i64) -> Result<()> {
    sqlx::query("UPDATE events SET name = name WHERE id = $1").bind(event_id).execute(conn).await?;
    Ok(())
}

/// Most values one statement binds: under SQLite's limit (32,766) and PostgreSQL's (65,535), so a
/// multi-row statement built with [`values_rows`] stays valid on both stores.
pub const MAX_BIND_PARAMS: usize = 30_000;

/// The `VALUES` list of a multi-row `INSERT`: `rows` tuples of `cols` numbered placeholders, `($1, $2),
/// ($3, $4)`, which both dialects run (sqlx's `QueryBuilder` would write `?` for the `Any` driver, which
/// PostgreSQL does not parse). One statement for a whole batch instead of one round trip per row.
pub fn values_rows(rows: usize, cols: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 6);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * cols + c + 1));
        }
        sql.push(')');
    }
    sql
}

/// Whether a statement of [`values_rows`] with `rows` rows should stay prepared in the connection's cache:
/// the forms of up to [`PREPARED_ROWS_MAX`] rows. A statement that is not kept is parsed, planned and
/// described again each time — on PostgreSQL a round trip of its own before the one that runs it — and
/// the group committer writes a few multi-row `INSERT`s per batch, batches being a handful of orders on
/// PostgreSQL (each instance commits as soon as its last batch is durable). Keeping those forms cut the
/// two-instance bench's p99 by about a third. Larger forms (rarer, and each a large plan to hold) are
/// prepared each time; the connections' caches ([`PG_STATEMENT_CACHE`]) hold the kept forms of every table
/// beside the single statements.
pub fn keep_prepared(rows: usize) -> bool {
    rows <= PREPARED_ROWS_MAX
}

/// The most rows of a multi-row statement that stays prepared ([`keep_prepared`]).
pub const PREPARED_ROWS_MAX: usize = 32;

/// Prepared statements each PostgreSQL connection keeps (sqlx's default is 100): the multi-row forms kept
/// by [`keep_prepared`] of the six tables the committer writes (up to 6 × 32) beside the single statements.
/// Applied unless the database URL sets `statement-cache-capacity` itself.
pub const PG_STATEMENT_CACHE: usize = 256;

/// A boolean column as either store returns it. sqlx's `Any` driver refuses to map a SQLite column
/// declared BOOLEAN at all, so queries read boolean columns as `CAST(col AS INTEGER)` (0/1 in both
/// dialects) and decode them into `Flag` (which also takes a real bool). Bind plain `bool`s: both stores
/// accept them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag(pub bool);

impl From<Flag> for bool {
    fn from(f: Flag) -> bool {
        f.0
    }
}

impl Type<Any> for Flag {
    fn type_info() -> AnyTypeInfo {
        <bool as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        matches!(ty.kind(), AnyTypeInfoKind::Bool) || ty.kind().is_integer()
    }
}

impl<'r> Decode<'r, Any> for Flag {
    fn decode(value: <Any as sqlx::Database>::ValueRef<'r>) -> std::result::Result<Self, sqlx::error::BoxDynError> {
        if matches!(value.type_info().kind(), AnyTypeInfoKind::Bool) {
            <bool as Decode<Any>>::decode(value).map(Flag)
        } else {
            <i64 as Decode<Any>>::decode(value).map(|n| Flag(n != 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::values_rows;

    #[test]
    fn values_rows_numbers_placeholders_row_after_row() {
        assert_eq!(values_rows(1, 2), "($1, $2)");
        assert_eq!(values_rows(3, 2), "($1, $2), ($3, $4), ($5, $6)");
        assert_eq!(values_rows(0, 4), "");
    }
}
