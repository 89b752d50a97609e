//! `MySqlStore`: MySQL 8 and MariaDB 10.11+, writes in short InnoDB transactions.

use std::{fmt::Write as _, sync::Arc, time::Duration};

use sqlx::{
    mysql::{MySqlDatabaseError, MySqlPoolOptions},
    AssertSqlSafe, Connection as _, MySql, MySqlPool, Row,
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
const PREFIX_OF_NAME: &str = "LEFT(name, LENGTH(?))";

/// How long `connect`'s pool waits for a free connection before the call fails (`503`).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a write is tried again after InnoDB chose it as a deadlock's victim (InnoDB
/// rolled it back whole, so trying again is safe).
const DEADLOCK_RETRIES: usize = 3;
/// ER_LOCK_DEADLOCK.
const DEADLOCK: u16 = 1213;

/// Sessions in MySQL 8 or MariaDB 10.11+ (cargo feature `mysql`, sqlx 0.9): one row per
/// session and one row per field (InnoDB), so a request writes only the fields it changed.
///
/// - **Load** is one query (the session's row joined with its fields).
/// - **Save** of one field that keeps the session's expiry (what the layer sends between
///   two refreshes of the expiry, see
///   [`with_expiry_refresh_interval`](crate::SessionLayer::with_expiry_refresh_interval))
///   is one prepared statement: an `INSERT ... SELECT ... ON DUPLICATE KEY UPDATE` that
///   writes the field's row only if the session's row is live and has that expiry (the
///   field's foreign key holds the session's row against a concurrent delete). Any other
///   save (or that one, when it finds the session gone or its expiry moved) is one round
///   trip: the whole transaction (`START TRANSACTION`; an `UPDATE` of the expiry that
///   checks the session is live, locks its row and takes its numeric key; a `DELETE` of
///   the removed fields if any; one `INSERT ... ON DUPLICATE KEY UPDATE` of the changed
///   ones; `COMMIT`) sent as one multi-statement query, with every value in it as a hex
///   literal (`X'..'`), so nothing a session holds is ever parsed as SQL. A save of more
///   than 64 KiB of values (or 1000 fields) runs instead as a transaction of prepared
///   statements: four or five round trips. Only the changed fields travel.
/// - **Create** never overwrites a live session; **regenerate** changes the ID on the
///   session's row (its field rows hang off a numeric key, so none is rewritten); **touch**
///   is one `UPDATE` of the expiry; **delete** removes the row and, by cascade, its fields.
/// - An expired row is never returned; [`delete_expired`](Self::delete_expired) and
///   [`spawn_cleanup`](Self::spawn_cleanup) remove them in bounded batches, through an index
///   on the expiry.
/// - A write that InnoDB picks as a deadlock's victim is rolled back whole and tried again.
///
/// Concurrent saves of one session queue on its row's lock; saves of different fields all
/// keep their change, saves of the same field are last-writer-wins.
///
/// ```no_run
/// # async fn example() -> Result<(), session_runtime::StoreError> {
/// use session_runtime::{Key, MySqlStore, SessionLayer};
///
/// let store = MySqlStore::connect("mysql://app@localhost/app").await?;
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
/// [`migrate`](Self::migrate) runs [`migration_sql`](Self::migration_sql), which is, for
/// the default table names:
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS `session_records` (
///     record BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
///     id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
///     expires_at BIGINT NOT NULL, -- milliseconds since the Unix epoch
///     UNIQUE KEY (id),
///     KEY `session_records_expires_at` (expires_at)
/// ) ENGINE = InnoDB;
/// CREATE TABLE IF NOT EXISTS `session_fields` (
///     record BIGINT NOT NULL,
///     name VARBINARY(512) NOT NULL,
///     value LONGBLOB NOT NULL,
///     term VARBINARY(255) AS (IF(LEFT(name, 5) = '__ix.', LEFT(value, 255), NULL)) VIRTUAL,
///     PRIMARY KEY (record, name),
///     KEY `session_fields_index_terms` (term),
///     FOREIGN KEY (record) REFERENCES `session_records` (record) ON DELETE CASCADE
/// ) ENGINE = InnoDB;
/// ```
///
/// The `term` column is the session index's (see
/// [`PostgresStore`](crate::PostgresStore#schema)): the value of the field rows named
/// `__ix.*`, so listing a user's sessions reads only theirs. It is `NULL` for every other
/// row, so rewriting a field's value never touches its index.
///
/// Field names are compared byte for byte (`VARBINARY`), never case- or accent-folded, and
/// may be up to 512 bytes; a longer one fails the save with [`StoreError::Rejected`]. A
/// value may be as large as the server's `max_allowed_packet`. The store relies on the
/// foreign key's cascade: keep `foreign_key_checks` on.
///
/// # Privileges
///
/// ```sql
/// GRANT SELECT, INSERT, UPDATE, DELETE ON app.session_records TO 'app'@'%';
/// GRANT SELECT, INSERT, UPDATE, DELETE ON app.session_fields TO 'app'@'%';
/// ```
///
/// `migrate()` also needs `CREATE` and `REFERENCES` on the database.
///
/// # The pool
///
/// As for [`PostgresStore`](crate::PostgresStore#the-pool): build your pool with
/// `test_before_acquire(false)` ([`connect`](Self::connect) does); the store keeps the
/// connections it used between calls.
#[derive(Clone, Debug)]
pub struct MySqlStore {
    conns: Arc<Conns<MySql>>,
    sql: Arc<Statements>,
    /// Saves as one multi-statement round trip (`with_one_trip_saves`).
    one_trip: bool,
}

/// The statements, with the table names in them.
#[derive(Debug)]
struct Statements {
    tables: Tables,
    load: String,
    insert_record: String,
    save_record: String,
    /// A save of one field that keeps the stored expiry.
    save_kept: String,
    regenerate_record: String,
    touch: String,
    delete: String,
    find_indexed: String,
    delete_indexed: String,
    purge_expired_holder: String,
    delete_expired: String,
    migrate: Vec<String>,
    verify: [String; 2],
}

impl Statements {
    fn new(prefix: &str) -> Self {
        let tables = Tables::new(prefix, '`');
        let (r, f) = (&tables.records, &tables.fields);
        let index = &tables.expiry_index;
        let term_index = &tables.term_index;
        let mut migrate = Vec::new();
        if let Some((database, _)) = prefix.split_once('.') {
            migrate.push(format!("CREATE DATABASE IF NOT EXISTS `{database}`"));
        }
        migrate.push(format!(
            "CREATE TABLE IF NOT EXISTS {r} (\n    \
             record BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,\n    \
             id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n    \
             expires_at BIGINT NOT NULL, -- milliseconds since the Unix epoch\n    \
             UNIQUE KEY (id),\n    \
             KEY `{index}` (expires_at)\n) ENGINE = InnoDB"
        ));
        migrate.push(format!(
            "CREATE TABLE IF NOT EXISTS {f} (\n    \
             record BIGINT NOT NULL,\n    \
             name VARBINARY(512) NOT NULL,\n    \
             value LONGBLOB NOT NULL,\n    \
             term VARBINARY(255) AS (IF(LEFT(name, 5) = '__ix.', LEFT(value, 255), NULL)) VIRTUAL,\n    \
             PRIMARY KEY (record, name),\n    \
             KEY `{term_index}` (term),\n    \
             FOREIGN KEY (record) REFERENCES {r} (record) ON DELETE CASCADE\n) ENGINE = InnoDB"
        ));
        Self {
            load: format!(
                "SELECT r.expires_at, f.name, f.value FROM {r} r \
                 LEFT JOIN {f} f ON f.record = r.record \
                 WHERE r.id = ? AND r.expires_at > ?"
            ),
            insert_record: format!("INSERT INTO {r} (id, expires_at) VALUES (?, ?)"),
            save_record: format!(
                "UPDATE {r} SET expires_at = ?, record = LAST_INSERT_ID(record) \
                 WHERE id = ? AND expires_at > ?"
            ),
            save_kept: save_kept_sql(r, f),
            regenerate_record: format!(
                "UPDATE {r} SET id = ?, expires_at = ?, record = LAST_INSERT_ID(record) \
                 WHERE id = ? AND expires_at > ?"
            ),
            touch: format!("UPDATE {r} SET expires_at = ? WHERE id = ? AND expires_at > ?"),
            delete: format!("DELETE FROM {r} WHERE id = ?"),
            find_indexed: format!(
                "SELECT r.id, r.expires_at, f.name, f.value FROM {f} i \
                 JOIN {r} r ON r.record = i.record JOIN {f} f ON f.record = r.record \
                 WHERE i.term = ? AND i.name = ? AND i.value = ? AND r.expires_at > ? \
                 ORDER BY r.record"
            ),
            delete_indexed: format!(
                "DELETE FROM {r} WHERE id = ? AND expires_at > ? AND record IN \
                 (SELECT i.record FROM {f} i WHERE i.name = ? AND i.value = ?)"
            ),
            purge_expired_holder: format!("DELETE FROM {r} WHERE id = ? AND expires_at <= ?"),
            delete_expired: format!(
                "DELETE FROM {r} WHERE expires_at <= ? ORDER BY expires_at LIMIT ?"
            ),
            migrate,
            verify: [
                format!("SELECT record, id, expires_at FROM {r} LIMIT 0"),
                format!("SELECT record, name, value FROM {f} LIMIT 0"),
            ],
            tables,
        }
    }

    /// The text of a one-trip save (see `MySqlStore::save_in_one_trip`).
    fn save_batch(&self, id: &SessionId, patch: &Patch) -> String {
        let rows = Rows::of(patch);
        let (r, f) = (&self.tables.records, &self.tables.fields);
        let values: usize = rows.values.iter().map(|v| v.len()).sum();
        let mut sql = String::with_capacity(512 + 2 * values + 8 * rows.names.len());
        let now = millis(std::time::SystemTime::now());
        let expires_at = millis(patch.expires_at);
        sql.push_str("START TRANSACTION;\nUPDATE ");
        sql.push_str(r);
        let _ = write!(
            sql,
            " SET expires_at = {expires_at}, record = LAST_INSERT_ID(record) WHERE id = "
        );
        hex_literal(&mut sql, id.as_str().as_bytes());
        let _ = write!(
            sql,
            " AND expires_at > {now};\n\
             SET @session_record = IF(ROW_COUNT() > 0, LAST_INSERT_ID(), 0);\n"
        );
        let exact = rows.exact_removed();
        if !exact.is_empty() {
            let _ = write!(
                sql,
                "DELETE FROM {f} WHERE record = @session_record AND name IN ("
            );
            for (i, name) in exact.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                hex_literal(&mut sql, name.as_bytes());
            }
            sql.push_str(");\n");
        }
        // A map field's clear: every name under the prefix, before the upserts.
        for prefix in rows.removed_prefixes() {
            let _ = write!(
                sql,
                "DELETE FROM {f} WHERE record = @session_record AND LEFT(name, {}) = ",
                prefix.len()
            );
            hex_literal(&mut sql, prefix.as_bytes());
            sql.push_str(";\n");
        }
        if !rows.names.is_empty() {
            let _ = write!(
                sql,
                "INSERT INTO {f} (record, name, value) SELECT @session_record, t.name, t.value \
                 FROM ("
            );
            for (i, (name, value)) in rows.names.iter().zip(&rows.values).enumerate() {
                sql.push_str(if i == 0 {
                    "SELECT "
                } else {
                    " UNION ALL SELECT "
                });
                hex_literal(&mut sql, name.as_bytes());
                if i == 0 {
                    sql.push_str(" AS name");
                }
                sql.push_str(", ");
                hex_literal(&mut sql, value);
                if i == 0 {
                    sql.push_str(" AS value");
                }
            }
            let _ = writeln!(sql, ") AS t WHERE @session_record > 0 {UPSERT};");
        }
        // A session variable reads back as DECIMAL: cast it to what it holds.
        sql.push_str("COMMIT;\nSELECT CAST(@session_record AS SIGNED)");
        sql
    }
}

/// A save of one field that keeps the session's stored expiry, as one statement: the field
/// is upserted only if the session's row is live and has that expiry, so the row need not be
/// written and no transaction spans two statements. The field's foreign key holds a shared
/// lock on the session's row until the statement commits, so a concurrent delete waits for
/// it and then takes the new row with it. When no row matches (the session is gone, or its
/// expiry is not the one the patch keeps) nothing is written, and the whole save runs.
/// One field only: more rows (a `UNION ALL`, a derived table) make the server build a
/// temporary table for every statement, which costs more than the transaction it saves.
/// Placeholders: the name, the value, the ID, the expiry, now.
fn save_kept_sql(records: &str, fields: &str) -> String {
    format!(
        "INSERT INTO {fields} (record, name, value) SELECT r.record, ?, ? FROM {records} r \
         WHERE r.id = ? AND r.expires_at = ? AND r.expires_at > ? {UPSERT}"
    )
}

/// Saves whose values take at most this many bytes go as one multi-statement round trip
/// (their values hex-encoded, so twice as long in the query); larger ones as a transaction
/// of prepared statements, well under the server's `max_allowed_packet`.
const BATCH_MAX_BYTES: usize = 64 * 1024;

/// Whether `patch` may be tried as a save that writes only its field's row: it sets one
/// field and removes none.
fn keeps_fields(patch: &Patch) -> bool {
    patch.remove.is_empty() && patch.set.len() == 1
}

/// Whether `patch` is small enough for a one-trip save.
fn batched(patch: &Patch) -> bool {
    patch.set.len() + patch.remove.len() <= CHUNK
        && patch.set.iter().map(|(_, v)| v.len()).sum::<usize>() <= BATCH_MAX_BYTES
}

/// Appends `bytes` as a MySQL hex literal, `X'0a1b'`: only hex digits between the quotes,
/// whatever the bytes are.
fn hex_literal(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2 + 3);
    out.push_str("X'");
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out.push('\'');
}

/// How an upsert replaces an existing field's value.
const UPSERT: &str = "ON DUPLICATE KEY UPDATE value = VALUES(value)";

/// What MySQL's and MariaDB's error numbers mean to the store.
fn classify(err: &dyn sqlx::error::DatabaseError) -> Failure {
    let number = err
        .try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number);
    match number {
        // no such table, unknown column, unknown database
        Some(1146 | 1054 | 1049) => Failure::MissingTables,
        // data too long for column
        Some(1406) => Failure::TooLarge,
        _ => Failure::Other,
    }
}

/// Whether InnoDB rolled the transaction back as a deadlock's victim.
fn deadlocked(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .is_some_and(|e| e.number() == DEADLOCK),
        _ => false,
    }
}

impl MySqlStore {
    /// A store on `pool`, with the default table names. Nothing is checked until
    /// [`migrate`](Self::migrate) or [`verify`](Self::verify).
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_runtime::MySqlStore;
    /// use sqlx::mysql::MySqlPoolOptions;
    ///
    /// let pool = MySqlPoolOptions::new()
    ///     .test_before_acquire(false)
    ///     .connect("mysql://app@localhost/app")
    ///     .await?;
    /// let store = MySqlStore::new(pool);
    /// store.verify().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(pool: MySqlPool) -> Self {
        let keep = usize::try_from(pool.options().get_max_connections()).unwrap_or(usize::MAX);
        Self {
            conns: Conns::new(pool, keep),
            sql: Arc::new(Statements::new("")),
            one_trip: true,
        }
    }

    /// Connects a pool to `url` configured for the store (10 connections, no ping before
    /// each use, a 2-second acquire timeout), and builds the store on it.
    pub async fn connect(url: impl AsRef<str>) -> Result<Self, StoreError> {
        let pool = MySqlPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect(url.as_ref())
            .await
            .map_err(StoreError::backend)?;
        Ok(Self::new(pool))
    }

    /// Names the tables `<prefix>session_records` and `<prefix>session_fields`; the prefix
    /// may start with a database name and a `.` (`"auth."`), which `migrate()` then
    /// creates too. ASCII letters, digits and `_` only.
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

    /// Whether a save goes as one multi-statement round trip (the default) or as a
    /// transaction of prepared statements (four round trips for a save that only sets
    /// fields, five when it also removes some). One trip suits a server across a network;
    /// prepared statements cost the server less parsing, which can serve more saves per
    /// second when the database is next to the app. `BENCHMARKS.md` has both.
    pub fn with_one_trip_saves(mut self, one_trip: bool) -> Self {
        self.one_trip = one_trip;
        self
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &MySqlPool {
        self.conns.pool()
    }

    /// The SQL that [`migrate`](Self::migrate) runs, statements separated by `;`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let pool = sqlx::MySqlPool::connect_lazy("mysql://localhost/app").unwrap();
    /// let store = session_runtime::MySqlStore::new(pool).with_table_prefix("web_");
    /// assert!(store.migration_sql().contains("`web_session_fields`"));
    /// # }
    /// ```
    pub fn migration_sql(&self) -> String {
        self.sql.migrate.join(";\n") + ";\n"
    }

    /// Creates the tables and indexes if they do not exist (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        for sql in &self.sql.migrate {
            sqlx::query(AssertSqlSafe(sql.as_str()))
                .execute(self.pool())
                .await
                .map_err(|e| self.error(e))?;
        }
        Ok(())
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
    /// each), and returns how many it deleted.
    pub async fn delete_expired(&self) -> Result<u64, StoreError> {
        let now = millis(std::time::SystemTime::now());
        delete_in_batches(|limit| async move {
            retried(|attempt| async move {
                let mut conn = self.conns.get(attempt > 0).await?;
                let done = sqlx::query(AssertSqlSafe(self.sql.delete_expired.as_str()))
                    .bind(now)
                    .bind(limit)
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

    /// Starts a task that runs [`delete_expired`](Self::delete_expired) every `every` until
    /// the returned handle is stopped or dropped; see
    /// [`PostgresStore::spawn_cleanup`](crate::PostgresStore::spawn_cleanup).
    pub fn spawn_cleanup(&self, every: Duration) -> CleanupTask {
        let store = self.clone();
        CleanupTask::spawn(every, "MySqlStore", move || {
            let store = store.clone();
            async move { store.delete_expired().await }
        })
    }

    fn error(&self, err: sqlx::Error) -> StoreError {
        store_error(err, &self.sql.tables, classify)
    }

    /// Runs a write transaction, again after a deadlock, and (for a save) again on a fresh
    /// connection after a dead one.
    async fn apply(&self, step: Step<'_>, patch: &Patch) -> Result<Outcome, StoreError> {
        let mut deadlocks = 0;
        loop {
            let result = match step {
                Step::Save(id) if keeps_fields(patch) => {
                    match retried(|attempt| self.save_kept(id, patch, attempt)).await {
                        Ok(true) => Ok(Outcome::Done),
                        Ok(false) => self.save_whole(id, patch).await,
                        Err(e) => Err(e),
                    }
                }
                Step::Save(id) => self.save_whole(id, patch).await,
                _ => self.transact(step, patch, 0).await,
            };
            match result {
                Err(e) if deadlocked(&e) && deadlocks < DEADLOCK_RETRIES => deadlocks += 1,
                result => return result.map_err(|e| self.error(e)),
            }
        }
    }

    /// A save that writes the session's row too: in one trip or as a transaction.
    async fn save_whole(&self, id: &SessionId, patch: &Patch) -> Result<Outcome, sqlx::Error> {
        let step = Step::Save(id);
        if self.one_trip && batched(patch) {
            retried(|attempt| self.save_in_one_trip(id, patch, attempt)).await
        } else {
            retried(|attempt| self.transact(step, patch, attempt)).await
        }
    }

    /// A save that keeps the stored expiry (see [`save_kept_sql`]): whether it applied.
    async fn save_kept(
        &self,
        id: &SessionId,
        patch: &Patch,
        attempt: usize,
    ) -> Result<bool, sqlx::Error> {
        let (name, value) = &patch.set[0];
        let query = sqlx::query(AssertSqlSafe(self.sql.save_kept.as_str()))
            .bind(name.as_ref())
            .bind(&value[..])
            .bind(id.as_str())
            .bind(millis(patch.expires_at))
            .bind(millis(std::time::SystemTime::now()));
        let mut conn = self.conns.get(attempt > 0).await?;
        let done = query.execute(&mut *conn).await?;
        self.conns.put(conn);
        Ok(done.rows_affected() > 0)
    }

    /// A save as one round trip: the whole transaction sent as one multi-statement text
    /// query, every value in it as a hex literal (`X'..'`: nothing in it is parsed as SQL),
    /// the session's numeric key carried from the `UPDATE` to the field statements in a
    /// session variable, and read back at the end (0: the session is gone).
    async fn save_in_one_trip(
        &self,
        id: &SessionId,
        patch: &Patch,
        attempt: usize,
    ) -> Result<Outcome, sqlx::Error> {
        let sql = self.sql.save_batch(id, patch);
        let mut conn = self.conns.get(attempt > 0).await?;
        match sqlx::raw_sql(AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await
        {
            Ok(rows) => {
                let record = match rows.last() {
                    Some(row) => row.try_get::<i64, _>(0)?,
                    None => 0,
                };
                self.conns.put(conn);
                Ok(if record > 0 {
                    Outcome::Done
                } else {
                    Outcome::Missing
                })
            }
            Err(e) => {
                // A statement failed part-way: the server stopped there, inside the
                // transaction. The connection is closed (which rolls it back), never reused.
                conn.close_on_drop();
                Err(e)
            }
        }
    }

    /// One write transaction.
    async fn transact(
        &self,
        step: Step<'_>,
        patch: &Patch,
        attempt: usize,
    ) -> Result<Outcome, sqlx::Error> {
        let rows = Rows::of(patch);
        let now = millis(std::time::SystemTime::now());
        let expires_at = millis(patch.expires_at);
        let mut conn = self.conns.get(attempt > 0).await?;
        let mut tx = conn.begin().await?;
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
                    .bind(new.as_str())
                    .bind(expires_at)
                    .bind(old.as_str())
                    .bind(now)
            }
        };
        let record = match first.execute(&mut *tx).await {
            Ok(done) if done.rows_affected() == 0 => None,
            Ok(done) => Some(done.last_insert_id()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                tx.rollback().await?;
                self.conns.put(conn);
                return Ok(Outcome::Taken);
            }
            Err(e) => return Err(e),
        };
        let Some(record) = record.filter(|r| *r > 0) else {
            tx.rollback().await?;
            self.conns.put(conn);
            return Ok(Outcome::Missing);
        };
        for names in rows.exact_removed().chunks(CHUNK) {
            let sql = self.sql.tables.delete_fields(names.len());
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(record);
            for name in names {
                query = query.bind(*name);
            }
            query.execute(&mut *tx).await?;
        }
        for prefix in rows.removed_prefixes() {
            let sql = self.sql.tables.delete_prefixed(PREFIX_OF_NAME);
            sqlx::query(AssertSqlSafe(sql))
                .bind(record)
                .bind(prefix)
                .bind(prefix)
                .execute(&mut *tx)
                .await?;
        }
        for (names, values) in rows.names.chunks(CHUNK).zip(rows.values.chunks(CHUNK)) {
            let sql = self.sql.tables.upsert_fields(names.len(), UPSERT);
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (name, value) in names.iter().zip(values) {
                query = query.bind(record).bind(*name).bind(*value);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.conns.put(conn);
        Ok(Outcome::Done)
    }

    /// After a create or regenerate found `id` taken: deletes the holder if it has expired
    /// (so the write can be tried again), and says whether it did.
    async fn purge(&self, id: &SessionId) -> Result<bool, StoreError> {
        let done = sqlx::query(AssertSqlSafe(self.sql.purge_expired_holder.as_str()))
            .bind(id.as_str())
            .bind(millis(std::time::SystemTime::now()))
            .execute(self.pool())
            .await
            .map_err(|e| self.error(e))?;
        Ok(done.rows_affected() > 0)
    }
}

impl Writes for MySqlStore {
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

impl SessionStore for MySqlStore {
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
        let mut fields = Vec::with_capacity(rows.len());
        for row in &rows {
            let name: Option<&[u8]> = row.try_get(1).map_err(|e| self.error(e))?;
            let value: Option<&[u8]> = row.try_get(2).map_err(|e| self.error(e))?;
            // A name that is not UTF-8 was not written by the store: no field reads it.
            fields.push((name.and_then(|n| std::str::from_utf8(n).ok()), value));
        }
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
                .bind(millis(expires_at))
                .bind(id.as_str())
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
                .bind(term)
                .bind(index.as_bytes())
                .bind(term)
                .bind(now)
                .fetch_all(&mut *conn)
                .await?;
            self.conns.put(conn);
            Ok(rows)
        })
        .await
        .map_err(|e| self.error(e))?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: &str = row.try_get(0).map_err(|e| self.error(e))?;
            let expires_at: i64 = row.try_get(1).map_err(|e| self.error(e))?;
            let name: Option<&[u8]> = row.try_get(2).map_err(|e| self.error(e))?;
            let value: Option<&[u8]> = row.try_get(3).map_err(|e| self.error(e))?;
            found.push((
                id,
                expires_at,
                name.and_then(|n| std::str::from_utf8(n).ok()),
                value,
            ));
        }
        Ok(super::indexed_records(found.into_iter()))
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
                .bind(now)
                .bind(index.as_bytes())
                .bind(term)
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

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use bytes::Bytes;

    use super::*;

    #[test]
    fn hex_literals_hold_only_hex_digits() {
        let mut out = String::new();
        hex_literal(&mut out, b"'; DROP TABLE x; --\x00\xff");
        assert_eq!(out, "X'273b2044524f50205441424c4520783b202d2d00ff'");
        out.clear();
        hex_literal(&mut out, b"");
        assert_eq!(out, "X''");
    }

    #[test]
    fn a_one_trip_save_carries_only_hex_and_numbers() {
        let sql = Statements::new("app_");
        let patch = Patch {
            set: vec![(Cow::Borrowed("it's"), Bytes::from_static(b"\"'); --\""))],
            remove: vec![Cow::Borrowed("old")],
            expires_at: std::time::SystemTime::now(),
        };
        let text = sql.save_batch(&SessionId::from_store("abc"), &patch);
        assert!(text.starts_with("START TRANSACTION;"), "{text}");
        assert!(text.contains("WHERE id = X'616263'"), "{text}");
        assert!(text.contains("name IN (X'6f6c64')"), "{text}");
        assert!(
            text.contains("SELECT X'6974277s'".replace("7s", "73").as_str()),
            "{text}"
        );
        assert!(
            !text.contains("--\""),
            "the value is never in the text as is: {text}"
        );
        assert!(
            text.ends_with("COMMIT;\nSELECT CAST(@session_record AS SIGNED)"),
            "{text}"
        );
        let large = Patch {
            set: vec![(
                Cow::Borrowed("a"),
                Bytes::from(vec![b'x'; BATCH_MAX_BYTES + 1]),
            )],
            remove: vec![],
            expires_at: std::time::SystemTime::now(),
        };
        assert!(batched(&patch) && !batched(&large));
    }
}
