//! `SqliteStore`: one writer at a time per store, readers alongside (WAL).

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    AssertSqlSafe, Connection as _, Row, Sqlite, SqlitePool,
};

use super::{
    conns::Conns, delete_in_batches, millis, record_from, retried, store_error, CleanupTask,
    Failure, Outcome, Rows, Step, Tables, Writes, CHUNK,
};
use crate::{
    store::{LoadKeys, Patch, Record, SessionStore, StoreError, WriteResult},
    SessionId,
};

/// The first `length(prefix)` characters of a field's name, to match a prefix with.
const PREFIX_OF_NAME: &str = "substr(name, 1, length(?))";

/// How long a write waits for another process's write to finish (SQLite's busy timeout).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `connect`'s pool waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sessions in SQLite (cargo feature `sqlite`, sqlx 0.9 with SQLite bundled): one row per
/// session and one row per field, so a request writes only the fields it changed.
///
/// - **Load** is one query (the session's row joined with its fields), and loads run
///   alongside writes (WAL journal).
/// - **Save** is one `BEGIN IMMEDIATE` transaction: an `UPDATE ... RETURNING` of the
///   expiry that checks the session is live (when the expiry is the one stored, as the
///   layer keeps it between two refreshes, a `SELECT` instead, so the session's row is not
///   rewritten), a `DELETE` of the removed fields if any, one multi-row upsert of the
///   changed ones, `COMMIT`. The statements run in process, so "round trips" cost no
///   network; only the changed fields are written.
/// - **Create** never overwrites a live session; **regenerate** changes the ID on the
///   session's row only; **touch** updates the expiry only; **delete** removes the row and,
///   by cascade, its fields.
/// - An expired row is never returned; [`delete_expired`](Self::delete_expired) and
///   [`spawn_cleanup`](Self::spawn_cleanup) remove them in bounded batches.
///
/// **Concurrent writers.** SQLite lets one writer at a time in. A store (and its clones)
/// queues its own writes, first come first served, so they never meet SQLite's "database is
/// locked": under 32 concurrent writers a write waits for the ones ahead of it, each a
/// fraction of a millisecond. Writes from another process (or another store on the same
/// file) wait up to the busy timeout, 5 seconds with [`connect`](Self::connect). Saves of
/// different fields all keep their change; saves of the same field are last-writer-wins.
///
/// ```no_run
/// # async fn example() -> Result<(), session_runtime::StoreError> {
/// use session_runtime::{Key, SessionLayer, SqliteStore};
///
/// let store = SqliteStore::connect("sqlite:sessions.db").await?; // created if missing
/// store.migrate().await?;
/// let _cleanup = store.spawn_cleanup(std::time::Duration::from_secs(300));
/// let layer = SessionLayer::new(store, Key::generate());
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
///
/// # Schema
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS "session_records" (
///     record INTEGER PRIMARY KEY AUTOINCREMENT,
///     id TEXT NOT NULL UNIQUE,
///     expires_at INTEGER NOT NULL -- milliseconds since the Unix epoch
/// );
/// CREATE INDEX IF NOT EXISTS "session_records_expires_at" ON "session_records" (expires_at);
/// CREATE TABLE IF NOT EXISTS "session_fields" (
///     record INTEGER NOT NULL REFERENCES "session_records" (record) ON DELETE CASCADE,
///     name TEXT NOT NULL,
///     value BLOB NOT NULL,
///     PRIMARY KEY (record, name)
/// ) WITHOUT ROWID;
/// CREATE INDEX IF NOT EXISTS "session_fields_index_terms" ON "session_fields" (name, value)
///     WHERE substr(name, 1, 5) = '__ix.';
/// ```
///
/// The cascade needs `PRAGMA foreign_keys = ON` on every connection, which sqlx sets by
/// default (keep it on in your own pool's options). `AUTOINCREMENT` keeps a deleted
/// session's number from being handed to a new one.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    conns: Arc<Conns<Sqlite>>,
    sql: Arc<Statements>,
    /// Held across each write transaction: the store's writes go one at a time.
    writer: Arc<tokio::sync::Mutex<()>>,
}

/// The statements, with the table names in them.
#[derive(Debug)]
struct Statements {
    tables: Tables,
    load: String,
    insert_record: String,
    save_record: String,
    /// The live session's record key, for a save that keeps the expiry.
    live_record: String,
    regenerate_record: String,
    touch: String,
    delete: String,
    find_indexed: String,
    delete_indexed: String,
    purge_expired_holder: String,
    delete_expired: String,
    migrate: String,
    verify: [String; 2],
}

impl Statements {
    fn new(prefix: &str) -> Self {
        let tables = Tables::new(prefix, '"');
        let (r, f) = (&tables.records, &tables.fields);
        let index = match prefix.split_once('.') {
            Some((schema, _)) => format!("\"{schema}\".\"{}\"", tables.expiry_index),
            None => format!("\"{}\"", tables.expiry_index),
        };
        let bare_records = r.rsplit('.').next().unwrap_or(r);
        let bare_fields = f.rsplit('.').next().unwrap_or(f);
        let term_index = match prefix.split_once('.') {
            Some((schema, _)) => format!("\"{schema}\".\"{}\"", tables.term_index),
            None => format!("\"{}\"", tables.term_index),
        };
        Self {
            load: format!(
                "SELECT r.expires_at, f.name, f.value FROM {r} r \
                 LEFT JOIN {f} f ON f.record = r.record \
                 WHERE r.id = ?1 AND r.expires_at > ?2"
            ),
            insert_record: format!(
                "INSERT INTO {r} (id, expires_at) VALUES (?1, ?2) \
                 ON CONFLICT (id) DO NOTHING RETURNING record"
            ),
            // Only when the expiry moves: a write within the layer's refresh interval keeps
            // it, and then `live_record` finds the row without writing it.
            save_record: format!(
                "UPDATE {r} SET expires_at = ?1 WHERE id = ?2 AND expires_at > ?3 \
                 AND expires_at <> ?1 RETURNING record"
            ),
            live_record: format!("SELECT record FROM {r} WHERE id = ?1 AND expires_at > ?2"),
            regenerate_record: format!(
                "UPDATE {r} SET id = ?4, expires_at = ?1 WHERE id = ?2 AND expires_at > ?3 \
                 RETURNING record"
            ),
            touch: format!("UPDATE {r} SET expires_at = ?1 WHERE id = ?2 AND expires_at > ?3"),
            delete: format!("DELETE FROM {r} WHERE id = ?1"),
            // The partial index's predicate, repeated so the planner uses it.
            find_indexed: format!(
                "SELECT r.id, r.expires_at, f.name, f.value FROM {f} i \
                 JOIN {r} r ON r.record = i.record JOIN {f} f ON f.record = r.record \
                 WHERE i.name = ?1 AND i.value = ?2 AND substr(i.name, 1, 5) = '__ix.' \
                 AND r.expires_at > ?3 ORDER BY r.record"
            ),
            // Correlated, so it reads the one session's rows (an `IN` list would scan).
            delete_indexed: format!(
                "DELETE FROM {r} WHERE id = ?1 AND expires_at > ?4 AND EXISTS \
                 (SELECT 1 FROM {f} i WHERE i.record = {bare_records}.record \
                 AND i.name = ?2 AND i.value = ?3)"
            ),
            purge_expired_holder: format!("DELETE FROM {r} WHERE id = ?1 AND expires_at <= ?2"),
            delete_expired: format!(
                "DELETE FROM {r} WHERE record IN (SELECT record FROM {r} \
                 WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)"
            ),
            migrate: format!(
                "CREATE TABLE IF NOT EXISTS {r} (\n    \
                 record INTEGER PRIMARY KEY AUTOINCREMENT,\n    \
                 id TEXT NOT NULL UNIQUE,\n    \
                 expires_at INTEGER NOT NULL -- milliseconds since the Unix epoch\n);\n\
                 CREATE INDEX IF NOT EXISTS {index} ON {bare_records} (expires_at);\n\
                 CREATE TABLE IF NOT EXISTS {f} (\n    \
                 record INTEGER NOT NULL REFERENCES {bare_records} (record) ON DELETE CASCADE,\n    \
                 name TEXT NOT NULL,\n    \
                 value BLOB NOT NULL,\n    \
                 PRIMARY KEY (record, name)\n) WITHOUT ROWID;\n\
                 CREATE INDEX IF NOT EXISTS {term_index} ON {bare_fields} (name, value) \
                 WHERE substr(name, 1, 5) = '__ix.';\n"
            ),
            verify: [
                format!("SELECT record, id, expires_at FROM {r} LIMIT 0"),
                format!("SELECT record, name, value FROM {f} LIMIT 0"),
            ],
            tables,
        }
    }
}

/// How an upsert replaces an existing field's value.
const UPSERT: &str = "ON CONFLICT (record, name) DO UPDATE SET value = excluded.value";

/// What SQLite's messages mean to the store (its error codes do not tell a missing table
/// from other errors).
fn classify(err: &dyn sqlx::error::DatabaseError) -> Failure {
    let message = err.message();
    if message.starts_with("no such table") || message.starts_with("no such column") {
        Failure::MissingTables
    } else if message.contains("too big") {
        Failure::TooLarge
    } else {
        Failure::Other
    }
}

impl SqliteStore {
    /// A store on `pool`, with the default table names. Nothing is checked until
    /// [`migrate`](Self::migrate) or [`verify`](Self::verify). For writes from other
    /// processes to wait rather than fail, give the pool's options a busy timeout (sqlx's
    /// default is 5 seconds) and the WAL journal.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool};
    ///
    /// let options = SqliteConnectOptions::new()
    ///     .filename("app.db")
    ///     .create_if_missing(true)
    ///     .journal_mode(SqliteJournalMode::Wal);
    /// let store = session_runtime::SqliteStore::new(SqlitePool::connect_with(options).await?);
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(pool: SqlitePool) -> Self {
        let keep = usize::try_from(pool.options().get_max_connections()).unwrap_or(usize::MAX);
        Self {
            conns: Conns::new(pool, keep),
            sql: Arc::new(Statements::new("")),
            writer: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Opens (creating it if missing) the database at `url` (`sqlite:path.db`,
    /// `sqlite://path.db`, `sqlite::memory:` is refused: each connection would get its own
    /// empty database) with the WAL journal, `synchronous = NORMAL` (a commit survives a
    /// crash of the app; a power loss may lose the last ones), a 5-second busy timeout and
    /// foreign keys on, and builds the store on it.
    pub async fn connect(url: impl AsRef<str>) -> Result<Self, StoreError> {
        let url = url.as_ref();
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::backend(
                "an in-memory SQLite database is private to one connection: give a file \
                 (`sqlite:sessions.db`), or use the MemoryStore",
            ));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::backend)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(StoreError::backend)?;
        Ok(Self::new(pool))
    }

    /// Names the tables `<prefix>session_records` and `<prefix>session_fields`; the prefix
    /// may start with an attached database's name and a `.`. ASCII letters, digits and `_`
    /// only.
    ///
    /// # Panics
    ///
    /// On any other prefix.
    pub fn with_table_prefix(mut self, prefix: &str) -> Self {
        self.sql = Arc::new(Statements::new(prefix));
        self
    }

    /// How many connections the store keeps checked out between calls (default: the
    /// pool's maximum; 0 to go through the pool on every call, paying its ping each time,
    /// and to hand no connection from call to call).
    pub fn with_kept_connections(mut self, keep: usize) -> Self {
        self.conns = Conns::new(self.conns.pool().clone(), keep);
        self
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &SqlitePool {
        self.conns.pool()
    }

    /// The SQL that [`migrate`](Self::migrate) runs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let pool = sqlx::SqlitePool::connect_lazy("sqlite:app.db").unwrap();
    /// let store = session_runtime::SqliteStore::new(pool);
    /// assert!(store.migration_sql().contains("WITHOUT ROWID"));
    /// # }
    /// ```
    pub fn migration_sql(&self) -> String {
        self.sql.migrate.clone()
    }

    /// Creates the tables and the index if they do not exist (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let err = |e| store_error(e, &self.sql.tables, classify);
        let mut conn = self.pool().acquire().await.map_err(err)?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        sqlx::raw_sql(AssertSqlSafe(self.sql.migrate.as_str()))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    /// Checks that the tables exist with the columns the store uses.
    pub async fn verify(&self) -> Result<(), StoreError> {
        for sql in &self.sql.verify {
            sqlx::query(AssertSqlSafe(sql.as_str()))
                .execute(self.pool())
                .await
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// Deletes the sessions that have expired, in batches of at most 1000 (one statement
    /// each, other writes going between batches), and returns how many it deleted.
    pub async fn delete_expired(&self) -> Result<u64, StoreError> {
        let now = millis(std::time::SystemTime::now());
        delete_in_batches(|limit| async move {
            let _writing = self.writer.lock().await;
            let mut conn = self.conns.get(false).await.map_err(|e| self.error(e))?;
            let done = sqlx::query(AssertSqlSafe(self.sql.delete_expired.as_str()))
                .bind(now)
                .bind(limit)
                .execute(&mut *conn)
                .await
                .map_err(|e| self.error(e))?;
            self.conns.put(conn);
            Ok(done.rows_affected())
        })
        .await
    }

    /// Starts a task that runs [`delete_expired`](Self::delete_expired) every `every` until
    /// the returned handle is stopped or dropped; see
    /// [`PostgresStore::spawn_cleanup`](crate::PostgresStore::spawn_cleanup).
    pub fn spawn_cleanup(&self, every: Duration) -> CleanupTask {
        let store = self.clone();
        CleanupTask::spawn(every, "SqliteStore", move || {
            let store = store.clone();
            async move { store.delete_expired().await }
        })
    }

    fn error(&self, err: sqlx::Error) -> StoreError {
        store_error(err, &self.sql.tables, classify)
    }

    /// One write transaction, after the store's writes ahead of it.
    async fn apply(&self, step: Step<'_>, patch: &Patch) -> Result<Outcome, StoreError> {
        let rows = Rows::of(patch);
        let now = millis(std::time::SystemTime::now());
        let expires_at = millis(patch.expires_at);
        let _writing = self.writer.lock().await;
        let err = |e| self.error(e);
        let mut conn = self.conns.get(false).await.map_err(err)?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let first = match step {
            Step::Create(id) => sqlx::query(AssertSqlSafe(self.sql.insert_record.as_str()))
                .bind(id.as_str())
                .bind(expires_at),
            Step::Save(id) => sqlx::query(AssertSqlSafe(self.sql.save_record.as_str()))
                .bind(expires_at)
                .bind(id.as_str())
                .bind(now),
            Step::Regenerate(old, new) => {
                sqlx::query(AssertSqlSafe(self.sql.regenerate_record.as_str()))
                    .bind(expires_at)
                    .bind(old.as_str())
                    .bind(now)
                    .bind(new.as_str())
            }
        };
        let mut first = first.fetch_optional(&mut *tx).await;
        if let (Step::Save(id), Ok(None)) = (step, &first) {
            // The expiry did not move, or the session is gone: which, without a write (the
            // writer's lock and `BEGIN IMMEDIATE` keep the row as it is meanwhile).
            first = sqlx::query(AssertSqlSafe(self.sql.live_record.as_str()))
                .bind(id.as_str())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await;
        }
        let record: i64 = match first {
            Ok(Some(row)) => row.try_get(0).map_err(err)?,
            Ok(None) => {
                tx.rollback().await.map_err(err)?;
                self.conns.put(conn);
                return Ok(Outcome::Missing);
            }
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                tx.rollback().await.map_err(err)?;
                self.conns.put(conn);
                return Ok(Outcome::Taken);
            }
            Err(e) => return Err(err(e)),
        };
        for names in rows.exact_removed().chunks(CHUNK) {
            let sql = self.sql.tables.delete_fields(names.len());
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(record);
            for name in names {
                query = query.bind(*name);
            }
            query.execute(&mut *tx).await.map_err(err)?;
        }
        for prefix in rows.removed_prefixes() {
            let sql = self.sql.tables.delete_prefixed(PREFIX_OF_NAME);
            sqlx::query(AssertSqlSafe(sql))
                .bind(record)
                .bind(prefix)
                .bind(prefix)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        for (names, values) in rows.names.chunks(CHUNK).zip(rows.values.chunks(CHUNK)) {
            let sql = self.sql.tables.upsert_fields(names.len(), UPSERT);
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (name, value) in names.iter().zip(values) {
                query = query.bind(record).bind(*name).bind(*value);
            }
            query.execute(&mut *tx).await.map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        self.conns.put(conn);
        Ok(Outcome::Done)
    }

    /// After a create or regenerate found `id` taken: deletes the holder if it has expired
    /// (so the write can be tried again), and says whether it did.
    async fn purge(&self, id: &SessionId) -> Result<bool, StoreError> {
        let _writing = self.writer.lock().await;
        let done = sqlx::query(AssertSqlSafe(self.sql.purge_expired_holder.as_str()))
            .bind(id.as_str())
            .bind(millis(std::time::SystemTime::now()))
            .execute(self.pool())
            .await
            .map_err(|e| self.error(e))?;
        Ok(done.rows_affected() > 0)
    }
}

impl Writes for SqliteStore {
    fn write(
        &self,
        step: Step<'_>,
        patch: &Patch,
    ) -> impl std::future::Future<Output = Result<Outcome, StoreError>> + Send {
        self.apply(step, patch)
    }

    fn purge_expired_holder(
        &self,
        id: &SessionId,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send {
        self.purge(id)
    }
}

impl SessionStore for SqliteStore {
    async fn load(&self, id: &SessionId, _: LoadKeys<'_>) -> Result<Option<Record>, StoreError> {
        let now = millis(std::time::SystemTime::now());
        let rows = retried(|attempt| async move {
            let mut conn = self.conns.get(attempt > 0).await?;
            let rows = sqlx::query(AssertSqlSafe(self.sql.load.as_str()))
                .bind(id.as_str())
                .bind(now)
                .fetch_all(&mut *conn)
                .await?;
            self.conns.put(conn);
            Ok(rows)
        })
        .await
        .map_err(|e| self.error(e))?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let expires_at: i64 = first.try_get(0).map_err(|e| self.error(e))?;
        let fields = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get::<Option<&str>, _>(1)?,
                    row.try_get::<Option<&[u8]>, _>(2)?,
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| self.error(e))?;
        Ok(Some(record_from(expires_at, &fields)))
    }

    async fn create(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        super::create(self, id, patch).await
    }

    async fn save(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        super::save(self, id, patch).await
    }

    async fn regenerate(&self, old: &SessionId, new: &SessionId, patch: &Patch) -> WriteResult {
        super::regenerate(self, old, new, patch).await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let mut conn = self.conns.get(false).await.map_err(|e| self.error(e))?;
        sqlx::query(AssertSqlSafe(self.sql.delete.as_str()))
            .bind(id.as_str())
            .execute(&mut *conn)
            .await
            .map_err(|e| self.error(e))?;
        self.conns.put(conn);
        Ok(())
    }

    async fn touch(&self, id: &SessionId, expires_at: std::time::SystemTime) -> WriteResult {
        let now = millis(std::time::SystemTime::now());
        let _writing = self.writer.lock().await;
        let mut conn = self.conns.get(false).await.map_err(|e| self.error(e))?;
        let done = sqlx::query(AssertSqlSafe(self.sql.touch.as_str()))
            .bind(millis(expires_at))
            .bind(id.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.error(e))?;
        self.conns.put(conn);
        if done.rows_affected() > 0 {
            Ok(None)
        } else {
            Err(StoreError::NotFound)
        }
    }

    fn supports_index(&self) -> bool {
        true
    }

    async fn find_indexed(
        &self,
        index: &str,
        term: &[u8],
    ) -> Result<Vec<(SessionId, Record)>, StoreError> {
        let now = millis(std::time::SystemTime::now());
        let rows = retried(|attempt| async move {
            let mut conn = self.conns.get(attempt > 0).await?;
            let rows = sqlx::query(AssertSqlSafe(self.sql.find_indexed.as_str()))
                .bind(index)
                .bind(term)
                .bind(now)
                .fetch_all(&mut *conn)
                .await?;
            self.conns.put(conn);
            Ok(rows)
        })
        .await
        .map_err(|e| self.error(e))?;
        let rows = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| self.error(e))?;
        Ok(super::indexed_records(rows.into_iter()))
    }

    async fn delete_indexed(
        &self,
        id: &SessionId,
        index: &str,
        term: &[u8],
    ) -> Result<bool, StoreError> {
        let now = millis(std::time::SystemTime::now());
        let _writing = self.writer.lock().await;
        let mut conn = self.conns.get(false).await.map_err(|e| self.error(e))?;
        let done = sqlx::query(AssertSqlSafe(self.sql.delete_indexed.as_str()))
            .bind(id.as_str())
            .bind(index)
            .bind(term)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.error(e))?;
        self.conns.put(conn);
        Ok(done.rows_affected() > 0)
    }
}
