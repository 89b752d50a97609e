//! The SQL stores (`PostgresStore`, `MySqlStore`, `SqliteStore`): what the three share.
//!
//! Each backend file holds its SQL and the code that runs it; this module holds the table
//! names, the patch as rows, the record built from rows, the connection cache that keeps
//! sqlx's pool from adding a round trip per statement, error mapping and the clean-up task.

mod conns;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::{
    collections::HashSet,
    error::Error as StdError,
    fmt,
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;

#[cfg(feature = "mysql")]
pub use self::mysql::MySqlStore;
#[cfg(feature = "postgres")]
pub use self::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use self::sqlite::SqliteStore;

use super::{FieldKey, FieldMap, Patch, Record, StoreError, WriteResult};
use crate::{
    meta::{from_millis, to_millis},
    SessionId,
};

/// Expired sessions one clean-up statement deletes at most, so that it never holds its locks
/// for long.
const CLEANUP_BATCH: u32 = 1000;
/// How many times a call that is safe to repeat (a load, touch, delete, save) is tried again
/// after its connection turned out to be dead (after the server restarted, say).
const RETRIES: usize = 2;
/// The longest table prefix accepted: PostgreSQL truncates identifiers past 63 bytes.
const MAX_PREFIX: usize = 40;

/// The two tables a SQL store keeps, as identifiers already quoted for its dialect.
#[derive(Debug, Clone)]
struct Tables {
    /// One row per session: the numeric key its fields hang off, the ID, the expiry.
    records: String,
    /// One row per field: the session's numeric key, the store key, the encoded value.
    fields: String,
    /// The expiry index's name (unquoted, prefixed like the tables).
    expiry_index: String,
    /// The name of the index on the session index's terms (unquoted, prefixed).
    term_index: String,
    /// The tables' names, unquoted, for messages.
    plain: (String, String),
}

impl Tables {
    /// The tables for `prefix`, quoted with `quote` (`"` or `` ` ``).
    ///
    /// # Panics
    ///
    /// On a prefix that is not a plain identifier prefix (see `with_table_prefix`).
    fn new(prefix: &str, quote: char) -> Self {
        if let Err(problem) = check_prefix(prefix) {
            panic!("invalid table prefix {prefix:?}: {problem}");
        }
        let (schema, stem) = match prefix.split_once('.') {
            Some((schema, stem)) => (Some(schema), stem),
            None => (None, prefix),
        };
        let quoted = |name: &str| match schema {
            Some(schema) => format!("{quote}{schema}{quote}.{quote}{stem}{name}{quote}"),
            None => format!("{quote}{stem}{name}{quote}"),
        };
        Self {
            records: quoted("session_records"),
            fields: quoted("session_fields"),
            expiry_index: format!("{stem}session_records_expires_at"),
            term_index: format!("{stem}session_fields_index_terms"),
            plain: (
                format!("{prefix}session_records"),
                format!("{prefix}session_fields"),
            ),
        }
    }

    /// Deletes `n` named fields of one session (`?` placeholders: MySQL, SQLite).
    #[cfg(any(feature = "mysql", feature = "sqlite"))]
    fn delete_fields(&self, n: usize) -> String {
        format!(
            "DELETE FROM {} WHERE record = ? AND name IN ({})",
            self.fields,
            marks(n)
        )
    }

    /// Upserts `n` fields of one session, `on_conflict` being the dialect's clause that
    /// replaces an existing field's value (`?` placeholders: MySQL, SQLite).
    #[cfg(any(feature = "mysql", feature = "sqlite"))]
    fn upsert_fields(&self, n: usize, on_conflict: &str) -> String {
        format!(
            "INSERT INTO {} (record, name, value) VALUES {} {on_conflict}",
            self.fields,
            row_marks(n)
        )
    }

    /// Deletes the fields of one session under a prefix (a map field's clear), `left` being
    /// the dialect's expression for the name's first `length(prefix)` characters or bytes,
    /// bound as `record, prefix, prefix` (`?` placeholders: MySQL, SQLite).
    #[cfg(any(feature = "mysql", feature = "sqlite"))]
    fn delete_prefixed(&self, left: &str) -> String {
        format!(
            "DELETE FROM {} WHERE record = ? AND {left} = ?",
            self.fields
        )
    }

    /// "the tables x and y", for messages.
    fn described(&self) -> String {
        format!("the tables {} and {}", self.plain.0, self.plain.1)
    }
}

/// Why `prefix` cannot start a table name, if it cannot.
fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.len() > MAX_PREFIX {
        return Err("longer than 40 bytes");
    }
    let mut parts = prefix.split('.');
    let (first, second) = (parts.next().unwrap_or_default(), parts.next());
    if parts.next().is_some() {
        return Err("more than one `.`");
    }
    let plain = |part: &str| part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plain(first) || !second.is_none_or(plain) {
        return Err("only ASCII letters, digits, `_` and one `.` after a schema name");
    }
    if second.is_some() && first.is_empty() {
        return Err("an empty schema name before the `.`");
    }
    Ok(())
}

/// Rows one statement writes or deletes at most on MySQL and SQLite (their limits on bound
/// parameters are 65 535 and 32 766).
#[cfg(any(feature = "mysql", feature = "sqlite"))]
const CHUNK: usize = 1000;

/// `n` comma-separated placeholders: `?, ?, ?`.
#[cfg(any(feature = "mysql", feature = "sqlite"))]
fn marks(n: usize) -> String {
    let mut out = String::with_capacity(n * 3);
    for i in 0..n {
        out.push_str(if i == 0 { "?" } else { ", ?" });
    }
    out
}

/// `n` rows of three placeholders: `(?, ?, ?), (?, ?, ?)`.
#[cfg(any(feature = "mysql", feature = "sqlite"))]
fn row_marks(n: usize) -> String {
    let mut out = String::with_capacity(n * 11);
    for i in 0..n {
        out.push_str(if i == 0 { "(?, ?, ?)" } else { ", (?, ?, ?)" });
    }
    out
}

/// Milliseconds since the Unix epoch, as the SQL stores keep times (`BIGINT`).
fn millis(at: SystemTime) -> i64 {
    i64::try_from(to_millis(at)).unwrap_or(i64::MAX)
}

/// A patch as rows: the names and values to upsert (each name once, the last value kept),
/// and the names to delete (none that is also set: a set wins, as in
/// [`Patch::apply_to`]).
struct Rows<'a> {
    names: Vec<&'a str>,
    values: Vec<&'a [u8]>,
    removed: Vec<&'a str>,
}

impl<'a> Rows<'a> {
    fn of(patch: &'a Patch) -> Self {
        let mut seen = HashSet::with_capacity(patch.set.len());
        let mut names = Vec::with_capacity(patch.set.len());
        let mut values = Vec::with_capacity(patch.set.len());
        // Last value wins: walk backwards, keep each name's first sighting.
        for (name, value) in patch.set.iter().rev() {
            if seen.insert(name.as_ref()) {
                names.push(name.as_ref());
                values.push(&value[..]);
            }
        }
        let removed = patch
            .remove
            .iter()
            .map(AsRef::as_ref)
            .filter(|name| !seen.contains(name))
            .collect::<HashSet<&str>>()
            .into_iter()
            .collect();
        Self {
            names,
            values,
            removed,
        }
    }
}

impl<'a> Rows<'a> {
    /// The removed names that name one field.
    #[cfg(any(feature = "mysql", feature = "sqlite"))]
    fn exact_removed(&self) -> Vec<&'a str> {
        self.removed
            .iter()
            .copied()
            .filter(|name| !super::is_entry_prefix(name))
            .collect()
    }

    /// The removed names that end in `#`: every field under them goes (a map field's
    /// clear), before the upserts.
    #[cfg(any(feature = "mysql", feature = "sqlite"))]
    fn removed_prefixes(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.removed
            .iter()
            .copied()
            .filter(|name| super::is_entry_prefix(name))
    }
}

/// A record from a session's expiry and its field rows (a left join: a session without
/// fields gives one row without a name). Names are borrowed from the rows: each is copied
/// once, into its key.
/// The sessions of a `find_indexed` query, from its rows (ID, expiry, field name, value),
/// which come grouped by session.
fn indexed_records<'r>(
    rows: impl Iterator<Item = (&'r str, i64, Option<&'r str>, Option<&'r [u8]>)>,
) -> Vec<(SessionId, Record)> {
    let mut found: Vec<(SessionId, i64, Vec<FieldRow<'r>>)> = Vec::new();
    for (id, expires_at, name, value) in rows {
        match found.last_mut() {
            Some((last, _, fields)) if last.as_str() == id => fields.push((name, value)),
            _ => found.push((SessionId::from_store(id), expires_at, vec![(name, value)])),
        }
    }
    found
        .into_iter()
        .map(|(id, expires_at, fields)| (id, record_from(expires_at, &fields)))
        .collect()
}

/// A field row as a query returns it: name and value, both `NULL` for a session without
/// fields (the left join's one row).
type FieldRow<'r> = (Option<&'r str>, Option<&'r [u8]>);

/// The record of a session's expiry and its field rows. The values are copied into one
/// buffer that the record's values share, so a load allocates once for all of them.
fn record_from(expires_at: i64, rows: &[FieldRow<'_>]) -> Record {
    let mut fields = FieldMap::with_capacity_and_hasher(rows.len(), rustc_hash::FxBuildHasher);
    let all: usize = rows.iter().filter_map(|(_, v)| v.map(<[u8]>::len)).sum();
    let mut buffer = Vec::with_capacity(all);
    for (_, value) in rows {
        buffer.extend_from_slice(value.unwrap_or_default());
    }
    let buffer = Bytes::from(buffer);
    let mut at = 0;
    for (name, value) in rows {
        let len = value.map_or(0, <[u8]>::len);
        if let (Some(name), Some(_)) = (name, value) {
            fields.insert(FieldKey::new(name), buffer.slice(at..at + len));
        }
        at += len;
    }
    Record {
        fields: Arc::new(fields),
        expires_at: u64::try_from(expires_at).ok().and_then(from_millis),
        stale: false,
        complete: true,
    }
}

/// A sqlx failure with what the store was doing, and a hint where one helps.
#[derive(Debug)]
struct SqlError {
    context: String,
    source: sqlx::Error,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)
    }
}

impl StdError for SqlError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// What a database error means to the store, told apart by each dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The session tables (or a column) are missing.
    MissingTables,
    /// A value or name is too large for its column.
    TooLarge,
    /// Anything else the database refused.
    Other,
}

/// Maps a sqlx error to the store's, `classify` reading the database's own error codes.
fn store_error(
    err: sqlx::Error,
    tables: &Tables,
    classify: impl Fn(&dyn sqlx::error::DatabaseError) -> Failure,
) -> StoreError {
    let wrap = |context: String, source| Box::new(SqlError { context, source });
    match err {
        sqlx::Error::Database(db) => match classify(&*db) {
            Failure::MissingTables => StoreError::Backend(wrap(
                format!(
                    "{} are missing or incomplete: run the store's `migrate()` once, or the \
                     SQL it documents",
                    tables.described()
                ),
                sqlx::Error::Database(db),
            )),
            Failure::TooLarge => StoreError::Rejected(wrap(
                "a session field is too large for its column".into(),
                sqlx::Error::Database(db),
            )),
            Failure::Other => StoreError::Backend(Box::new(sqlx::Error::Database(db))),
        },
        sqlx::Error::PoolTimedOut => StoreError::Backend(wrap(
            "no database connection became free within the pool's acquire timeout".into(),
            sqlx::Error::PoolTimedOut,
        )),
        err @ (sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)) => StoreError::Corrupt(wrap(
            format!(
                "a row of {} is not what the store writes",
                tables.described()
            ),
            err,
        )),
        err => StoreError::Backend(Box::new(err)),
    }
}

/// Whether `err` says the connection is gone (so a fresh one may succeed), rather than
/// anything about the statement.
fn connection_lost(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_)
    )
}

/// Tries `op` again, on a fresh connection, when its connection turned out to be dead: for
/// calls whose effect is the same however often they run.
async fn retried<T, F, Fut>(mut op: F) -> Result<T, sqlx::Error>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 0;
    loop {
        match op(attempt).await {
            Err(err) if attempt < RETRIES && connection_lost(&err) => attempt += 1,
            done => return done,
        }
    }
}

/// The first statement of a write: what it does to the session's row.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// Insert a row for this ID.
    Create(&'a SessionId),
    /// Update this ID's live row.
    Save(&'a SessionId),
    /// Move the live row of the first ID to the second.
    Regenerate(&'a SessionId, &'a SessionId),
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Applied.
    Done,
    /// No live row has the ID (save, regenerate): nothing changed.
    Missing,
    /// The ID to write is taken (create, regenerate): nothing changed.
    Taken,
}

/// What each SQL store implements; the rest of its `create`, `save` and `regenerate`
/// (what each outcome means, trying again after an expired row held the ID) is shared.
trait Writes {
    /// One atomic write: `step` and the patch's fields, or nothing.
    fn write(
        &self,
        step: Step<'_>,
        patch: &Patch,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;

    /// Deletes the row holding `id` if it has expired, and says whether it did.
    fn purge_expired_holder(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// `SessionStore::create`: a taken ID is tried once more if its holder had expired.
async fn create<W: Writes + Sync>(store: &W, id: &SessionId, patch: &Patch) -> WriteResult {
    for _ in 0..2 {
        match store.write(Step::Create(id), patch).await? {
            Outcome::Done => return Ok(None),
            Outcome::Missing | Outcome::Taken => {
                if !store.purge_expired_holder(id).await? {
                    break;
                }
            }
        }
    }
    Err(StoreError::Collision)
}

/// `SessionStore::save`.
async fn save<W: Writes + Sync>(store: &W, id: &SessionId, patch: &Patch) -> WriteResult {
    match store.write(Step::Save(id), patch).await? {
        Outcome::Done => Ok(None),
        Outcome::Missing | Outcome::Taken => Err(StoreError::NotFound),
    }
}

/// `SessionStore::regenerate`: a taken new ID is tried once more if its holder had
/// expired.
async fn regenerate<W: Writes + Sync>(
    store: &W,
    old: &SessionId,
    new: &SessionId,
    patch: &Patch,
) -> WriteResult {
    for _ in 0..2 {
        match store.write(Step::Regenerate(old, new), patch).await? {
            Outcome::Done => return Ok(None),
            Outcome::Missing => return Err(StoreError::NotFound),
            Outcome::Taken => {
                if !store.purge_expired_holder(new).await? {
                    break;
                }
            }
        }
    }
    Err(StoreError::Collision)
}

/// A running clean-up task: deletes expired sessions every so often, until
/// [`stop`](Self::stop)ped or dropped. Started with a SQL store's `spawn_cleanup`.
///
/// Dropping the handle stops the task too, so keep it for as long as the app runs.
#[derive(Debug)]
#[must_use = "the clean-up task stops when its handle is dropped"]
pub struct CleanupTask {
    task: tokio::task::JoinHandle<()>,
}

impl CleanupTask {
    /// Starts `delete` every `every`, the first run at once.
    fn spawn<F, Fut>(every: Duration, what: &'static str, mut delete: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, StoreError>> + Send,
    {
        let every = every.max(Duration::from_millis(10));
        let task = tokio::spawn(async move {
            loop {
                match delete().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(sessions = n, "{what}: deleted expired sessions"),
                    Err(err) => tracing::warn!(
                        error = %crate::chain::Chain(&err),
                        "{what}: deleting expired sessions failed; trying again later"
                    ),
                }
                tokio::time::sleep(every).await;
            }
        });
        Self { task }
    }

    /// Stops the task (a clean-up statement under way is abandoned; it deletes all of its
    /// batch or none of it).
    pub fn stop(self) {
        self.task.abort();
    }

    /// Whether the task still runs.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for CleanupTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Deletes expired sessions batch by batch (each one statement of at most
/// [`CLEANUP_BATCH`] sessions) until a batch comes back short.
async fn delete_in_batches<F, Fut>(mut batch: F) -> Result<u64, StoreError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let mut total = 0;
    loop {
        let deleted = batch(CLEANUP_BATCH).await?;
        total += deleted;
        if deleted < u64::from(CLEANUP_BATCH) {
            return Ok(total);
        }
        // Let other statements at the tables between batches.
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn prefixes_are_plain_identifiers() {
        for good in ["", "app_", "auth.", "auth.app_", "A1_"] {
            assert_eq!(check_prefix(good), Ok(()), "{good:?}");
        }
        for bad in ["a-b", "a\"b", "a;drop", "a.b.c", ".x", "é", &"x".repeat(41)] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
        let tables = Tables::new("auth.app_", '"');
        assert_eq!(tables.records, r#""auth"."app_session_records""#);
        assert_eq!(tables.fields, r#""auth"."app_session_fields""#);
        assert_eq!(tables.expiry_index, "app_session_records_expires_at");
        assert_eq!(Tables::new("", '`').fields, "`session_fields`");
    }

    #[cfg(any(feature = "mysql", feature = "sqlite"))]
    #[test]
    fn placeholders_come_in_lists_and_rows() {
        assert_eq!(marks(3), "?, ?, ?");
        assert_eq!(row_marks(2), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(marks(0), "");
    }

    #[test]
    fn a_patch_becomes_rows_with_each_name_once() {
        let patch = Patch {
            set: vec![
                (Cow::Borrowed("a"), Bytes::from_static(b"1")),
                (Cow::Borrowed("b"), Bytes::from_static(b"2")),
                (Cow::Borrowed("a"), Bytes::from_static(b"3")),
            ],
            remove: vec![Cow::Borrowed("a"), Cow::Borrowed("c"), Cow::Borrowed("c")],
            expires_at: SystemTime::now(),
        };
        let rows = Rows::of(&patch);
        let mut set: Vec<_> = rows.names.iter().zip(&rows.values).collect();
        set.sort();
        assert_eq!(set, [(&"a", &&b"3"[..]), (&"b", &&b"2"[..])]);
        assert_eq!(rows.removed, ["c"]);
    }

    #[test]
    fn rows_become_a_complete_record() {
        let record = record_from(
            1_700_000_000_000,
            &[
                (Some("a"), Some(&b"1"[..])),
                (None, None),
                (Some("b"), Some(&b"22"[..])),
            ],
        );
        assert!(record.complete);
        assert_eq!(record.fields.len(), 2);
        assert_eq!(&record.fields["a"][..], b"1");
        assert_eq!(&record.fields["b"][..], b"22");
        assert_eq!(
            record.expires_at,
            from_millis(1_700_000_000_000),
            "the expiry is known"
        );
        assert_eq!(record_from(-5, &[]).expires_at, None);
    }
}
