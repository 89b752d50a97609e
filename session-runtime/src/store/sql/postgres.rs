//! `PostgresStore`: every write one statement (data-modifying CTEs).

use std::{sync::Arc, time::Duration};

use sqlx::{postgres::PgPoolOptions, AssertSqlSafe, PgPool, Postgres, Row};

use super::{
    conns::Conns, delete_in_batches, millis, record_from, retried, store_error, CleanupTask,
    Failure, Outcome, Rows, Step, Tables, Writes,
};
use crate::{
    store::{LoadKeys, Patch, Record, SessionStore, StoreError, WriteResult},
    SessionId,
};

/// How long `connect`'s pool waits for a free connection before the call fails (`503`).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// A key for `pg_advisory_xact_lock`, so that concurrent `migrate()` calls run one at a time.
const MIGRATE_LOCK: i64 = 0x7365_7373_696f_6e73; // "sessions"

/// Sessions in PostgreSQL (cargo feature `postgres`, sqlx 0.9): one row per session and one
/// row per field, so a request writes only the fields it changed.
///
/// - **Load** is one query (the session's row joined with its fields).
/// - **Save** is one statement, so one round trip: a data-modifying CTE that checks the
///   session is live (and locks its row), deletes the removed fields, upserts the changed
///   ones and sets the expiry. When the expiry is the one stored (the layer keeps it
///   between two refreshes, see
///   [`with_expiry_refresh_interval`](crate::SessionLayer::with_expiry_refresh_interval)),
///   the session's row is only locked against deletion, not rewritten. Only the changed
///   fields travel: an update of one field sends the same few hundred bytes whatever the
///   session's size.
/// - **Create** is one statement and never overwrites a live session; **regenerate** is one
///   statement that changes the ID on the session's row (its field rows hang off a numeric
///   key, so none is rewritten); **touch** updates the expiry only; **delete** removes the
///   row and, by cascade, its fields.
/// - An expired row is never returned; [`delete_expired`](Self::delete_expired) and
///   [`spawn_cleanup`](Self::spawn_cleanup) remove them in bounded batches, through an index
///   on the expiry.
///
/// Concurrent saves of one session queue on its row's lock for the length of one statement;
/// saves of different fields all keep their change, saves of the same field are
/// last-writer-wins.
///
/// ```no_run
/// # async fn example() -> Result<(), session_runtime::StoreError> {
/// use session_runtime::{Key, PostgresStore, SessionLayer};
///
/// let store = PostgresStore::connect("postgres://app@localhost/app").await?;
/// store.migrate().await?; // creates the tables once; or run `migration_sql()` yourself
/// let _cleanup = store.spawn_cleanup(std::time::Duration::from_secs(300));
/// let layer = SessionLayer::new(store, Key::generate());
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
///
/// # Schema
///
/// [`migrate`](Self::migrate) runs [`migration_sql`](Self::migration_sql), which is, for
/// the default table names:
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS "session_records" (
///     record BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
///     id TEXT NOT NULL UNIQUE,
///     expires_at BIGINT NOT NULL -- milliseconds since the Unix epoch
/// );
/// CREATE INDEX IF NOT EXISTS "session_records_expires_at" ON "session_records" (expires_at);
/// CREATE TABLE IF NOT EXISTS "session_fields" (
///     record BIGINT NOT NULL REFERENCES "session_records" (record) ON DELETE CASCADE,
///     name TEXT NOT NULL,
///     value BYTEA NOT NULL,
///     PRIMARY KEY (record, name)
/// );
/// CREATE INDEX IF NOT EXISTS "session_fields_index_terms" ON "session_fields" (name, value)
///     WHERE left(name, 5) = '__ix.';
/// ```
///
/// The last index finds sessions by the terms of `#[session(index)]` fields (the field rows
/// named `__ix.*`), so listing a user's sessions reads only theirs; no other row is in it.
///
/// Why two tables: a row per field is what lets concurrent requests change different fields
/// without overwriting each other, and keeps an update's size flat (a session stored as one
/// blob is rewritten whole by every save, and the last save wins). The numeric `record` key
/// lets regenerate change an ID in one row. The creation time, the schemas' versions and a
/// per-session idle timeout are field rows with reserved names (`__created`, `__v.*`,
/// `__ttl`).
///
/// # Privileges
///
/// At run time the store needs `SELECT, INSERT, UPDATE, DELETE` on both tables (and
/// `USAGE` on their schema); `migrate()` also needs `CREATE` on the schema.
///
/// ```sql
/// GRANT SELECT, INSERT, UPDATE, DELETE ON session_records, session_fields TO app;
/// ```
///
/// # The pool
///
/// [`new`](Self::new) takes your pool. For it to add no round trip, build it with
/// `test_before_acquire(false)` ([`connect`](Self::connect) does): the store keeps the
/// connections it used between calls, so sqlx's ping on handing a connection back is paid
/// only when a connection goes back to the pool (after a second unused), not per statement.
/// When more calls run at once than the pool has connections, a finished call hands its
/// connection straight to the store call that has waited longest, again without a ping;
/// at most one connection every 10 ms goes back through the pool instead (and pays its
/// ping), so that your app's own queries on the same pool are served while the store keeps
/// every connection busy. So the pool's own hooks (`before_acquire`, `after_release`) run
/// when a connection passes through the pool, not on every store call: the store's
/// statements need no per-connection set-up. A connection the store has held for the pool's
/// `max_lifetime` goes back to the pool, which closes it (its age counted from when the
/// store took it, so a connection lives at most about twice that). An exhausted pool fails
/// a call after the pool's `acquire_timeout` (`503`).
#[derive(Clone, Debug)]
pub struct PostgresStore {
    conns: Arc<Conns<Postgres>>,
    sql: Arc<Statements>,
}

/// The statements, with the table names in them.
#[derive(Debug)]
struct Statements {
    tables: Tables,
    load: String,
    create: String,
    save: String,
    /// `save` without its `DELETE` (for the usual save that removes nothing: less for the
    /// server to plan and run).
    save_sets_only: String,
    regenerate: String,
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
        // $1 the record's key (from the CTE named `s`), $names/$values the rows to upsert.
        let upsert = |names: u8, values: u8| {
            format!(
                "INSERT INTO {f} (record, name, value) \
                 SELECT s.record, t.name, t.value FROM s, \
                 UNNEST(${names}::text[], ${values}::bytea[]) AS t(name, value) \
                 ON CONFLICT (record, name) DO UPDATE SET value = EXCLUDED.value"
            )
        };
        // A removed name ending in `#` removes every name under it (a map field's clear)
        // but those the same statement upserts (`$sets`).
        let removal = |names: u8, sets: u8| {
            format!(
                "DELETE FROM {f} WHERE record = (SELECT record FROM s) AND (name = ANY(${names}::text[])                  OR EXISTS (SELECT 1 FROM UNNEST(${names}::text[]) AS p(prefix)                  WHERE right(p.prefix, 1) = '#' AND left(name, length(p.prefix)) = p.prefix))                  AND NOT (name = ANY(${sets}::text[]))"
            )
        };
        // The save's CTEs up to `s`, the live session's record key ($1 the ID, $2 the new
        // expiry, $3 now). The session's row is written only when the expiry changes: a
        // write within the layer's refresh interval keeps it, and then the row is only
        // locked against deletion (`FOR KEY SHARE`: a concurrent delete waits, then takes
        // the new field rows with it), which spares a new row version and its index entries
        // on every save. `k` locks the row only when `m` did not write it, so a row whose
        // expiry a concurrent save has just set to $2 still counts as live.
        let live = format!(
            "WITH m AS (UPDATE {r} SET expires_at = $2 \
             WHERE id = $1 AND expires_at > $3 AND expires_at <> $2 RETURNING record), \
             k AS (SELECT record FROM {r} WHERE id = $1 AND expires_at > $3 \
             AND NOT EXISTS (SELECT 1 FROM m) FOR KEY SHARE), \
             s AS (SELECT record FROM m UNION ALL SELECT record FROM k),"
        );
        let schema = match prefix.split_once('.') {
            Some((schema, _)) => format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\";\n"),
            None => String::new(),
        };
        let index = &tables.expiry_index;
        let term_index = &tables.term_index;
        Self {
            load: format!(
                "SELECT r.expires_at, f.name, f.value FROM {r} r \
                 LEFT JOIN {f} f ON f.record = r.record \
                 WHERE r.id = $1 AND r.expires_at > $2"
            ),
            create: format!(
                "WITH s AS (INSERT INTO {r} (id, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (id) DO NOTHING RETURNING record), \
                 u AS ({}) SELECT record FROM s",
                upsert(3, 4)
            ),
            save: format!(
                "{live} d AS ({}), u AS ({}) SELECT record FROM s",
                removal(4, 5),
                upsert(5, 6)
            ),
            save_sets_only: format!("{live} u AS ({}) SELECT record FROM s", upsert(5, 6)),
            regenerate: format!(
                "WITH s AS (UPDATE {r} SET id = $7, expires_at = $2 \
                 WHERE id = $1 AND expires_at > $3 RETURNING record), \
                 d AS ({}), u AS ({}) SELECT record FROM s",
                removal(4, 5),
                upsert(5, 6)
            ),
            touch: format!("UPDATE {r} SET expires_at = $2 WHERE id = $1 AND expires_at > $3"),
            delete: format!("DELETE FROM {r} WHERE id = $1"),
            // The partial index's predicate, repeated so the planner uses it.
            find_indexed: format!(
                "SELECT r.id, r.expires_at, f.name, f.value FROM {f} i \
                 JOIN {r} r ON r.record = i.record JOIN {f} f ON f.record = r.record \
                 WHERE i.name = $1 AND i.value = $2 AND left(i.name, 5) = '__ix.' \
                 AND r.expires_at > $3 ORDER BY r.record"
            ),
            delete_indexed: format!(
                "DELETE FROM {r} r WHERE r.id = $1 AND r.expires_at > $4 AND EXISTS \
                 (SELECT 1 FROM {f} i WHERE i.record = r.record AND i.name = $2 AND i.value = $3)"
            ),
            purge_expired_holder: format!("DELETE FROM {r} WHERE id = $1 AND expires_at <= $2"),
            delete_expired: format!(
                "DELETE FROM {r} WHERE record IN (SELECT record FROM {r} \
                 WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            ),
            migrate: format!(
                "{schema}CREATE TABLE IF NOT EXISTS {r} (\n    \
                 record BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n    \
                 id TEXT NOT NULL UNIQUE,\n    \
                 expires_at BIGINT NOT NULL -- milliseconds since the Unix epoch\n);\n\
                 CREATE INDEX IF NOT EXISTS \"{index}\" ON {r} (expires_at);\n\
                 CREATE TABLE IF NOT EXISTS {f} (\n    \
                 record BIGINT NOT NULL REFERENCES {r} (record) ON DELETE CASCADE,\n    \
                 name TEXT NOT NULL,\n    \
                 value BYTEA NOT NULL,\n    \
                 PRIMARY KEY (record, name)\n);\n\
                 CREATE INDEX IF NOT EXISTS \"{term_index}\" ON {f} (name, value) \
                 WHERE left(name, 5) = '__ix.';\n"
            ),
            verify: [
                format!("SELECT record, id, expires_at FROM {r} LIMIT 0"),
                format!("SELECT record, name, value FROM {f} LIMIT 0"),
            ],
            tables,
        }
    }
}

/// What PostgreSQL's SQLSTATE codes mean to the store.
fn classify(err: &dyn sqlx::error::DatabaseError) -> Failure {
    match err.code().as_deref() {
        // undefined_table, undefined_column, invalid_schema_name
        Some("42P01" | "42703" | "3F000") => Failure::MissingTables,
        // program_limit_exceeded, string_data_right_truncation
        Some("54000" | "22001") => Failure::TooLarge,
        _ => Failure::Other,
    }
}

impl PostgresStore {
    /// A store on `pool`, with the default table names (`session_records`,
    /// `session_fields`). Nothing is checked until [`migrate`](Self::migrate) or
    /// [`verify`](Self::verify); see [the pool](Self#the-pool) for how to configure it.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_runtime::PostgresStore;
    /// use sqlx::postgres::PgPoolOptions;
    ///
    /// let pool = PgPoolOptions::new()
    ///     .max_connections(20)
    ///     .test_before_acquire(false)
    ///     .connect("postgres://app@localhost/app")
    ///     .await?;
    /// let store = PostgresStore::new(pool).with_table_prefix("auth.");
    /// store.verify().await?; // the tables exist, made by your own migrations
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(pool: PgPool) -> Self {
        let keep = usize::try_from(pool.options().get_max_connections()).unwrap_or(usize::MAX);
        Self {
            conns: Conns::new(pool, keep),
            sql: Arc::new(Statements::new("")),
        }
    }

    /// Connects a pool to `url` configured for the store (10 connections, no ping before
    /// each use, a 2-second acquire timeout), and builds the store on it.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), session_runtime::StoreError> {
    /// let url = std::env::var("DATABASE_URL").unwrap_or_default();
    /// let store = session_runtime::PostgresStore::connect(url).await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: impl AsRef<str>) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect(url.as_ref())
            .await
            .map_err(StoreError::backend)?;
        Ok(Self::new(pool))
    }

    /// Names the tables `<prefix>session_records` and `<prefix>session_fields`. The prefix
    /// is ASCII letters, digits and `_`, optionally after a schema name and a `.`
    /// (`"auth."`, `"auth.web_"`); `migrate()` then creates the schema too.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use session_runtime::PostgresStore;
    ///
    /// let pool = sqlx::PgPool::connect_lazy("postgres://localhost/app").unwrap();
    /// let store = PostgresStore::new(pool).with_table_prefix("auth.");
    /// assert!(store.migration_sql().contains(r#""auth"."session_fields""#));
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// On any other prefix (it is part of the SQL the store runs).
    pub fn with_table_prefix(mut self, prefix: &str) -> Self {
        self.sql = Arc::new(Statements::new(prefix));
        self
    }

    /// How many connections the store keeps checked out between calls (default: the
    /// pool's maximum; 0 to go through the pool on every call, paying its ping each time,
    /// and to hand no connection from call to call). Kept connections unused for a second
    /// go back to the pool.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let pool = sqlx::PgPool::connect_lazy("postgres://localhost/app").unwrap();
    /// let store = session_runtime::PostgresStore::new(pool).with_kept_connections(4);
    /// # let _ = store;
    /// # }
    /// ```
    pub fn with_kept_connections(mut self, keep: usize) -> Self {
        self.conns = Conns::new(self.conns.pool().clone(), keep);
        self
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        self.conns.pool()
    }

    /// The SQL that [`migrate`](Self::migrate) runs, for your own migrations: creates the
    /// two tables and the expiry index if they do not exist.
    pub fn migration_sql(&self) -> String {
        self.sql.migrate.clone()
    }

    /// Creates the tables and the index if they do not exist (idempotent; concurrent calls
    /// from several instances take turns on an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let err = |e| store_error(e, &self.sql.tables, classify);
        let mut tx = self.pool().begin().await.map_err(err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        sqlx::raw_sql(AssertSqlSafe(self.sql.migrate.as_str()))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    /// Checks that the tables exist with the columns the store uses: a clear error now
    /// instead of a failure on every request.
    pub async fn verify(&self) -> Result<(), StoreError> {
        for sql in &self.sql.verify {
            sqlx::query(AssertSqlSafe(sql.as_str()))
                .execute(self.pool())
                .await
                .map_err(|e| store_error(e, &self.sql.tables, classify))?;
        }
        Ok(())
    }

    /// Deletes the sessions that have expired, in batches of at most 1000 (one statement
    /// each, skipping rows a save holds locked), and returns how many it deleted.
    pub async fn delete_expired(&self) -> Result<u64, StoreError> {
        let now = millis(std::time::SystemTime::now());
        delete_in_batches(|limit| async move {
            retried(|attempt| async move {
                let mut conn = self.conns.get(attempt > 0).await?;
                let done = sqlx::query(AssertSqlSafe(self.sql.delete_expired.as_str()))
                    .bind(now)
                    .bind(i64::from(limit))
                    .execute(&mut *conn)
                    .await?;
                self.conns.put(conn);
                Ok(done.rows_affected())
            })
            .await
            .map_err(|e| self.error(e))
        })
        .await
    }

    /// Starts a task that runs [`delete_expired`](Self::delete_expired) every `every` (the
    /// first run at once) until the returned handle is stopped or dropped. Expired sessions
    /// never load whether or not it runs; it keeps the tables small. Every few minutes is
    /// plenty: each run costs one indexed statement per 1000 expired sessions.
    ///
    /// Needs a Tokio runtime.
    pub fn spawn_cleanup(&self, every: Duration) -> CleanupTask {
        let store = self.clone();
        CleanupTask::spawn(every, "PostgresStore", move || {
            let store = store.clone();
            async move { store.delete_expired().await }
        })
    }

    fn error(&self, err: sqlx::Error) -> StoreError {
        store_error(err, &self.sql.tables, classify)
    }

    /// Runs a write statement (`create`, `save`, `regenerate`: a CTE returning the
    /// record's key) once: whether a row came back.
    async fn run_write(
        &self,
        sql: &str,
        id: &SessionId,
        new: Option<&SessionId>,
        patch: &Patch,
        with_removals: bool,
        attempt: usize,
    ) -> Result<bool, sqlx::Error> {
        let rows = Rows::of(patch);
        let now = millis(std::time::SystemTime::now());
        let mut conn = self.conns.get(attempt > 0).await?;
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(millis(patch.expires_at));
        if with_removals {
            query = query.bind(now).bind(&rows.removed);
        }
        query = query.bind(&rows.names).bind(&rows.values);
        if let Some(new) = new {
            query = query.bind(new.as_str());
        }
        let found = query.fetch_optional(&mut *conn).await?.is_some();
        self.conns.put(conn);
        Ok(found)
    }

    /// After a create or regenerate found `id` taken: deletes the holder if it has expired
    /// (so the write can be tried again), and says whether it did.
    async fn purge(&self, id: &SessionId) -> Result<bool, StoreError> {
        let mut conn = self.conns.get(false).await.map_err(|e| self.error(e))?;
        let done = sqlx::query(AssertSqlSafe(self.sql.purge_expired_holder.as_str()))
            .bind(id.as_str())
            .bind(millis(std::time::SystemTime::now()))
            .execute(&mut *conn)
            .await
            .map_err(|e| self.error(e))?;
        self.conns.put(conn);
        Ok(done.rows_affected() > 0)
    }
}

impl Writes for PostgresStore {
    async fn write(&self, step: Step<'_>, patch: &Patch) -> Result<Outcome, StoreError> {
        let written = match step {
            Step::Create(id) => self
                .run_write(&self.sql.create, id, None, patch, false, 0)
                .await
                .map(|created| {
                    if created {
                        Outcome::Done
                    } else {
                        Outcome::Taken
                    }
                }),
            Step::Save(id) => {
                let sql = if patch.remove.is_empty() {
                    &self.sql.save_sets_only
                } else {
                    &self.sql.save
                };
                // A save sets values and an expiry: applying it twice is applying it
                // once, so it may be tried again on a fresh connection.
                retried(|attempt| self.run_write(sql, id, None, patch, true, attempt))
                    .await
                    .map(|saved| {
                        if saved {
                            Outcome::Done
                        } else {
                            Outcome::Missing
                        }
                    })
            }
            Step::Regenerate(old, new) => {
                match self
                    .run_write(&self.sql.regenerate, old, Some(new), patch, true, 0)
                    .await
                {
                    Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                        Ok(Outcome::Taken)
                    }
                    moved => moved.map(|moved| {
                        if moved {
                            Outcome::Done
                        } else {
                            Outcome::Missing
                        }
                    }),
                }
            }
        };
        written.map_err(|e| self.error(e))
    }

    fn purge_expired_holder(
        &self,
        id: &SessionId,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send {
        self.purge(id)
    }
}

impl SessionStore for PostgresStore {
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
        retried(|attempt| async move {
            let mut conn = self.conns.get(attempt > 0).await?;
            sqlx::query(AssertSqlSafe(self.sql.delete.as_str()))
                .bind(id.as_str())
                .execute(&mut *conn)
                .await?;
            self.conns.put(conn);
            Ok(())
        })
        .await
        .map_err(|e| self.error(e))
    }

    async fn touch(&self, id: &SessionId, expires_at: std::time::SystemTime) -> WriteResult {
        let now = millis(std::time::SystemTime::now());
        let touched = retried(|attempt| async move {
            let mut conn = self.conns.get(attempt > 0).await?;
            let done = sqlx::query(AssertSqlSafe(self.sql.touch.as_str()))
                .bind(id.as_str())
                .bind(millis(expires_at))
                .bind(now)
                .execute(&mut *conn)
                .await?;
            self.conns.put(conn);
            Ok(done.rows_affected())
        })
        .await
        .map_err(|e| self.error(e))?;
        if touched > 0 {
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
        let deleted = retried(|attempt| async move {
            let mut conn = self.conns.get(attempt > 0).await?;
            let done = sqlx::query(AssertSqlSafe(self.sql.delete_indexed.as_str()))
                .bind(id.as_str())
                .bind(index)
                .bind(term)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            self.conns.put(conn);
            Ok(done.rows_affected())
        })
        .await
        .map_err(|e| self.error(e))?;
        Ok(deleted > 0)
    }
}
