//! The store: API key hashes, execution records and the audit log, in SQLite (one file,
//! `warden.db`, under the data directory, WAL mode).
//!
//! # Design
//!
//! Queries are plain `sqlx::query` strings in portable SQL, and the schema is in
//! `migrations/` (applied with `sqlx::migrate!` at open), so the same code can later run
//! against PostgreSQL. An audit append is one `BEGIN IMMEDIATE; INSERT …; COMMIT` batch (one
//! round trip to SQLite's worker thread) at the head this process last saw; the primary key on
//! `seq` refuses it when `warden keys` in another process appended meanwhile, and the append
//! is retried at the new head, so the chain cannot fork.
//!
//! # Limitations
//!
//! SQLite allows one writer at a time; every audited request writes once.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::Mutex;

use crate::audit::{self, ChainBreak, ChainHead, Event, NewEvent};
use crate::auth::{ApiKey, Scopes};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "warden.db";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory cannot be created.
    #[error("cannot create the data directory {path}; create it or point server.data_dir at a writable directory")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database cannot be opened.
    #[error("cannot open the store {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// A schema migration failed.
    #[error("store schema migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("store query failed")]
    Query(#[from] sqlx::Error),
    /// A stored value does not parse (the row was edited by hand).
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt {
        /// What was read.
        what: &'static str,
        /// Why it does not parse.
        detail: String,
    },
    /// The OS random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(String),
}

/// `INSERT` of one execution record; its arguments are bound by [`bind_execution`].
macro_rules! insert_execution_sql {
    () => {
        "INSERT INTO executions (id, principal, language, request_id, created_at, outcome, \
         record) VALUES (?, ?, ?, ?, ?, ?, ?)"
    };
}

/// `INSERT` of one audit event (arguments in column order).
macro_rules! insert_audit_sql {
    () => {
        "INSERT INTO audit_events (seq, time, request_id, principal, client, action, decision, \
         reason, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    };
}

/// Binds `row` to the next arguments of `query`, in the order of `insert_execution_sql!`.
fn bind_execution<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    row: &'q ExecutionRow,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(&row.id)
        .bind(&row.principal)
        .bind(&row.language)
        .bind(&row.request_id)
        .bind(&row.created_at)
        .bind(&row.outcome)
        .bind(row.record.to_string())
}

/// The store. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
    /// The audit chain's head `(seq, hash)` as this process last wrote or read it (`None`:
    /// read it from the database). Its lock serialises this process's appends.
    audit_head: std::sync::Arc<Mutex<Option<(i64, String)>>>,
}

/// An API key as listed (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    /// Public id (the part after `wdn_`).
    pub id: String,
    /// Name given at creation.
    pub name: String,
    /// Scopes.
    pub scopes: Scopes,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Expiry, unix seconds.
    pub expires_at: Option<i64>,
    /// Revocation time, unix seconds.
    pub revoked_at: Option<i64>,
    /// Hex SHA-256 of the key.
    #[serde(skip)]
    pub hash: String,
}

/// A stored execution.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExecutionRow {
    /// Execution id.
    pub id: String,
    /// Who ran it.
    pub principal: String,
    /// Language profile.
    pub language: String,
    /// Request id of the request that ran it.
    pub request_id: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Outcome class (`ok`, `nonzero_exit`, `timeout`, `oom`, `signal`, `error`).
    pub outcome: String,
    /// The stored record (JSON).
    pub record: serde_json::Value,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// RFC 3339 UTC time with milliseconds.
pub fn rfc3339_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Store {
    /// Opens (creating when needed) `data_dir/warden.db` and applies the schema migrations.
    ///
    /// # Errors
    ///
    /// [`StoreError::DataDir`], [`StoreError::Open`] or [`StoreError::Migrate`].
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        // Not world-readable: the store holds the audit log, key hashes, principals and client
        // addresses. Directories made here are 0700 and a new database 0600 (SQLite gives its
        // -wal and -shm files the database's mode). An existing database keeps its owner and
        // group bits (a data directory shared with an admin group stays usable); only its
        // world bits are removed, by its owner, best effort (a read-only mount or another
        // user's store is opened as it is). (Review, session 5: 0755 and 0644, which
        // `warden doctor` itself failed.)
        let data_dir_error = |source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(data_dir_error)?;
        let path = data_dir.join(DB_FILE);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Ok(meta) = std::fs::metadata(&path) {
                    let mode = meta.permissions().mode();
                    if mode & 0o007 != 0 {
                        // Fails (EPERM, EROFS) unless we own it on a writable mount: fine.
                        let _ = std::fs::set_permissions(
                            &path,
                            std::fs::Permissions::from_mode(mode & 0o770),
                        );
                    }
                }
            }
            Err(e) => return Err(data_dir_error(e)),
        }
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A connection to a local file does not go stale: skip the ping that would
            // otherwise precede every query (one more round trip to SQLite's worker thread).
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store {
            pool,
            path,
            audit_head: std::sync::Arc::new(Mutex::new(None)),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the pool, flushing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Writes a row, to prove the store is writable (for `/readyz`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the write fails.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO readiness (id, checked_at) VALUES (1, ?) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(rfc3339_now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// When [`Store::check_writable`] last wrote (tests).
    #[cfg(test)]
    pub(crate) async fn readiness_checked_at(&self) -> Option<String> {
        sqlx::query_scalar("SELECT checked_at FROM readiness WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .ok()
            .flatten()
    }

    // ---- API keys -------------------------------------------------------------------------

    /// Creates a key; returns its info and the key itself (shown once, never stored).
    ///
    /// # Errors
    ///
    /// [`StoreError::Random`] or [`StoreError::Query`].
    pub async fn create_key(
        &self,
        name: &str,
        scopes: &Scopes,
        expires_at: Option<i64>,
    ) -> Result<(KeyInfo, String), StoreError> {
        let key = ApiKey::generate().map_err(StoreError::Random)?;
        let info = KeyInfo {
            id: key.id.clone(),
            name: name.to_string(),
            scopes: scopes.clone(),
            created_at: unix_now(),
            expires_at,
            revoked_at: None,
            hash: key.hash_hex(),
        };
        sqlx::query(
            "INSERT INTO api_keys (id, name, hash, scopes, created_at, expires_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?, NULL)",
        )
        .bind(&info.id)
        .bind(&info.name)
        .bind(&info.hash)
        .bind(info.scopes.to_string())
        .bind(info.created_at)
        .bind(info.expires_at)
        .execute(&self.pool)
        .await?;
        Ok((info, key.secret_text()))
    }

    fn key_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<KeyInfo, StoreError> {
        let scopes: String = row.try_get("scopes")?;
        Ok(KeyInfo {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            scopes: scopes.parse().map_err(|e: String| StoreError::Corrupt {
                what: "key scopes",
                detail: e,
            })?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            hash: row.try_get("hash")?,
        })
    }

    /// The key with public id `id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn find_key(&self, id: &str) -> Result<Option<KeyInfo>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::key_from_row).transpose()
    }

    /// Every key, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::key_from_row).collect()
    }

    /// Revokes key `id`; false when there is no such key or it was already revoked.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(unix_now())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Number of keys neither revoked nor expired.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    pub async fn active_keys(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(unix_now())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    // ---- executions -----------------------------------------------------------------------

    /// Stores an execution record.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    pub async fn insert_execution(&self, row: &ExecutionRow) -> Result<(), StoreError> {
        bind_execution(sqlx::query(insert_execution_sql!()), row)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The execution with `id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn get_execution(&self, id: &str) -> Result<Option<ExecutionRow>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM executions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let record: String = row.try_get("record")?;
        Ok(Some(ExecutionRow {
            id: row.try_get("id")?,
            principal: row.try_get("principal")?,
            language: row.try_get("language")?,
            request_id: row.try_get("request_id")?,
            created_at: row.try_get("created_at")?,
            outcome: row.try_get("outcome")?,
            record: serde_json::from_str(&record).map_err(|e| StoreError::Corrupt {
                what: "execution record",
                detail: e.to_string(),
            })?,
        }))
    }

    // ---- audit log ------------------------------------------------------------------------

    /// Appends `event` to the audit chain.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    pub async fn append_audit(&self, new: NewEvent) -> Result<Event, StoreError> {
        self.append(None, new).await
    }

    /// Stores an execution record and appends `new` to the audit chain in one transaction:
    /// either both are on record or neither is.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    pub async fn insert_execution_audited(
        &self,
        row: &ExecutionRow,
        new: NewEvent,
    ) -> Result<Event, StoreError> {
        self.append(Some(row), new).await
    }

    /// Appends `new` (and stores `execution`, if any) in one transaction sent to SQLite as one
    /// batch: `BEGIN IMMEDIATE; INSERT …; COMMIT`, one round trip to the connection's worker
    /// thread instead of one per statement.
    ///
    /// The event's `seq` and `prev_hash` come from the head this process last wrote or read
    /// (under `audit_head`'s lock). Another process (`warden keys …`) may have appended since:
    /// then `seq` already exists, the primary key refuses the insert, the batch is rolled
    /// back, and the head is read again (at most three attempts). Every appender inserts at
    /// head + 1, so a successful insert proves the cached head was still the head.
    async fn append(
        &self,
        execution: Option<&ExecutionRow>,
        new: NewEvent,
    ) -> Result<Event, StoreError> {
        let mut head = self.audit_head.lock().await;
        let mut event = Event {
            seq: 0,
            time: rfc3339_now(),
            request_id: new.request_id,
            principal: new.principal,
            client: new.client,
            action: new.action,
            decision: new.decision.to_string(),
            reason: new.reason,
            details: new.details.to_string(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let mut conn = self.pool.acquire().await?;
        let mut attempt = 0;
        loop {
            let (last_seq, prev_hash) = match head.take() {
                Some(cached) => cached,
                None => Self::read_head(&mut conn).await?,
            };
            event.seq = last_seq + 1;
            event.prev_hash = prev_hash;
            event.hash = event.compute_hash();
            let query = match execution {
                Some(row) => bind_execution(
                    sqlx::query(concat!(
                        "BEGIN IMMEDIATE; ",
                        insert_execution_sql!(),
                        "; ",
                        insert_audit_sql!(),
                        "; COMMIT;"
                    )),
                    row,
                ),
                None => sqlx::query(concat!(
                    "BEGIN IMMEDIATE; ",
                    insert_audit_sql!(),
                    "; COMMIT;"
                )),
            };
            let result = query
                .bind(event.seq)
                .bind(&event.time)
                .bind(&event.request_id)
                .bind(&event.principal)
                .bind(&event.client)
                .bind(&event.action)
                .bind(&event.decision)
                .bind(&event.reason)
                .bind(&event.details)
                .bind(&event.prev_hash)
                .bind(&event.hash)
                .execute(&mut *conn)
                .await;
            match result {
                Ok(_) => {
                    *head = Some((event.seq, event.hash.clone()));
                    return Ok(event);
                }
                Err(e) => {
                    // The batch stopped at the failing statement, possibly inside its
                    // transaction: end it. A connection that cannot is closed, not pooled.
                    if let Err(rollback) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
                        if !rollback.to_string().contains("no transaction is active") {
                            conn.close_on_drop();
                        }
                    }
                    // "UNIQUE constraint failed: audit_events.seq" (SQLite's message).
                    let taken = matches!(
                        &e,
                        sqlx::Error::Database(db)
                            if db.is_unique_violation() && db.message().contains("audit_events.seq")
                    );
                    attempt += 1;
                    // A stale head: read it again (inside a write transaction) and retry.
                    if !(taken && attempt < 3) {
                        return Err(e.into());
                    }
                }
            }
        }
    }

    /// The chain's head `(seq, hash)`; `(0, GENESIS_HASH)` for an empty chain. (Another
    /// process may append right after: the insert at `seq + 1` then fails and is retried.)
    async fn read_head(conn: &mut sqlx::SqliteConnection) -> Result<(i64, String), StoreError> {
        let head = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
        Ok(match head {
            Some(row) => (
                row.try_get::<i64, _>("seq")?,
                row.try_get::<String, _>("hash")?,
            ),
            None => (0, audit::GENESIS_HASH.to_string()),
        })
    }

    fn event_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Event, StoreError> {
        Ok(Event {
            seq: row.try_get("seq")?,
            time: row.try_get("time")?,
            request_id: row.try_get("request_id")?,
            principal: row.try_get("principal")?,
            client: row.try_get("client")?,
            action: row.try_get("action")?,
            decision: row.try_get("decision")?,
            reason: row.try_get("reason")?,
            details: row.try_get("details")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        })
    }

    /// The newest `n` events, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    pub async fn audit_tail(&self, n: i64) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM (SELECT * FROM audit_events ORDER BY seq DESC LIMIT ?) ORDER BY seq",
        )
        .bind(n)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::event_from_row).collect()
    }

    /// Walks the whole chain in pages; `Ok(Err(break))` names the first broken event.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the store cannot be read.
    pub async fn verify_audit(&self) -> Result<Result<ChainHead, ChainBreak>, StoreError> {
        const PAGE: i64 = 1000;
        let mut head = ChainHead::empty();
        let mut after = i64::MIN;
        loop {
            let rows = sqlx::query("SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?")
                .bind(after)
                .bind(PAGE)
                .fetch_all(&self.pool)
                .await?;
            if rows.is_empty() {
                return Ok(Ok(head));
            }
            let events = rows
                .iter()
                .map(Self::event_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            after = events.last().map_or(after, |e| e.seq);
            head = match audit::verify(head, &events) {
                Ok(h) => h,
                Err(e) => return Ok(Err(e)),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::audit::Decision;

    /// Review (session 5): the store was created world-readable (0755 directory, 0644 files).
    #[tokio::test]
    async fn the_store_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let store = Store::open(&data).await.unwrap();
        store
            .create_key("x", &"fetch".parse().unwrap(), None)
            .await
            .unwrap();
        assert_eq!(mode(&data), 0o700);
        for file in ["warden.db", "warden.db-wal", "warden.db-shm"] {
            let path = data.join(file);
            if path.exists() {
                assert_eq!(mode(&path), 0o600, "{file}");
            }
        }
        store.close().await;
        // An existing database loses its world bits only (a group may share the store).
        std::fs::set_permissions(
            data.join("warden.db"),
            std::fs::Permissions::from_mode(0o664),
        )
        .unwrap();
        Store::open(&data).await.unwrap().close().await;
        assert_eq!(mode(&data.join("warden.db")), 0o660);
    }

    #[tokio::test]
    async fn keys_are_stored_as_hashes_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let scopes: Scopes = "execute,fetch".parse().unwrap();
        let (info, key) = store.create_key("ci", &scopes, None).await.unwrap();
        assert!(key.starts_with("wdn_"));
        let raw = std::fs::read(store.path()).unwrap_or_default();
        let wal = std::fs::read(dir.path().join("warden.db-wal")).unwrap_or_default();
        // `wdn_<id>_<secret>`: the id is hex, the secret base64url (which may contain `_`).
        let secret = key.splitn(3, '_').nth(2).unwrap();
        assert!(secret.len() >= 40, "{key}");
        for bytes in [&raw, &wal] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
        }
        assert_eq!(store.active_keys().await.unwrap(), 1);
        assert_eq!(
            store.find_key(&info.id).await.unwrap().unwrap().scopes,
            scopes
        );
        assert!(store.revoke_key(&info.id).await.unwrap());
        assert!(!store.revoke_key(&info.id).await.unwrap());
        assert_eq!(store.active_keys().await.unwrap(), 0);
    }

    fn execution(id: &str) -> ExecutionRow {
        ExecutionRow {
            id: id.into(),
            principal: "p".into(),
            language: "python".into(),
            request_id: "r1".into(),
            created_at: rfc3339_now(),
            outcome: "ok".into(),
            record: serde_json::json!({"exit_code": 0}),
        }
    }

    #[tokio::test]
    async fn execution_and_its_audit_event_are_stored_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let row = execution("e1");
        let event = store
            .insert_execution_audited(&row, NewEvent::new("execution", Decision::Allow))
            .await
            .unwrap();
        assert_eq!(event.seq, 1);
        let stored = store.get_execution("e1").await.unwrap().unwrap();
        assert_eq!(stored.record, row.record);
        assert_eq!(store.verify_audit().await.unwrap().unwrap().events, 1);

        // The same id again: the insert fails, and the audit event is rolled back with it.
        let err = store
            .insert_execution_audited(&row, NewEvent::new("execution", Decision::Allow))
            .await;
        assert!(matches!(err, Err(StoreError::Query(_))), "{err:?}");
        assert_eq!(store.verify_audit().await.unwrap().unwrap().events, 1);
        assert_eq!(store.audit_tail(10).await.unwrap().len(), 1);
        // Nothing of the failed batch is left open: the next append goes through.
        let next = store
            .append_audit(NewEvent::new("execution.read", Decision::Allow))
            .await
            .unwrap();
        assert_eq!(next.seq, 2);
        assert_eq!(store.verify_audit().await.unwrap().unwrap().events, 2);
    }

    #[tokio::test]
    async fn appends_from_two_processes_keep_one_chain() {
        // Two stores on one file stand for the server and `warden keys` in another process:
        // each caches the head it last wrote, so each append after the other's is stale and
        // must be detected and retried, never forking the chain.
        let dir = tempfile::tempdir().unwrap();
        let server = Store::open(dir.path()).await.unwrap();
        let cli = Store::open(dir.path()).await.unwrap();
        for i in 0..4 {
            let by = if i % 2 == 0 { &server } else { &cli };
            let event = by
                .append_audit(NewEvent::new("key.create", Decision::Allow))
                .await
                .unwrap();
            assert_eq!(event.seq, i + 1);
        }
        let event = server
            .insert_execution_audited(
                &execution("e1"),
                NewEvent::new("execution", Decision::Allow),
            )
            .await
            .unwrap();
        assert_eq!(event.seq, 5);
        let head = cli.verify_audit().await.unwrap().unwrap();
        assert_eq!(head.events, 5);
    }

    #[tokio::test]
    async fn audit_chain_verifies_and_detects_edits_and_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        for i in 0..5 {
            store
                .append_audit(
                    NewEvent::new("execution", Decision::Allow).reason(format!("run {i}")),
                )
                .await
                .unwrap();
        }
        let head = store.verify_audit().await.unwrap().unwrap();
        assert_eq!(head.events, 5);
        assert_eq!(store.audit_tail(2).await.unwrap()[1].seq, 5);

        sqlx::query("UPDATE audit_events SET decision = 'deny' WHERE seq = 3")
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(
            store.verify_audit().await.unwrap(),
            Err(ChainBreak::Edited { seq: 3 })
        );
        sqlx::query("DELETE FROM audit_events WHERE seq = 3")
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(
            store.verify_audit().await.unwrap(),
            Err(ChainBreak::Gap {
                seq: 4,
                expected: 3
            })
        );
    }
}
