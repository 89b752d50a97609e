//! Turning a stored record into a schema value (migrating and checking versions on the
//! way), and a schema's changes back into store writes.

use std::{borrow::Cow, collections::BTreeMap, fmt, marker::PhantomData, sync::Arc};

use bytes::Bytes;

pub use crate::error::{DecodeError, EncodeError};
use crate::{
    chain::Chain,
    changes::FieldState,
    codec::{Codec, CodecError, JsonCodec},
    migrate::{MigrationError, RawFields},
    record::{FieldKey, RawRecord},
    schema::{Schema, SchemaFields, SessionData},
};

pub use crate::record::FieldWrite;

/// How loading treats stored data that does not fit the code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodePolicy {
    /// A field that fails to decode takes its default (the other fields survive) and a
    /// warning is logged; a record from a newer schema version is read as far as the code
    /// understands it and its stored version is kept. Data the store cannot read as a record
    /// at all ([`StoreError::Corrupt`](crate::StoreError::Corrupt)) is logged and left as it
    /// is, and a new session starts under a new ID. The default.
    #[default]
    Lenient,
    /// Any field that fails to decode, failing migration, record of a newer version or
    /// unreadable stored data rejects the whole record: the request gets an error response.
    Strict,
}

/// A schema's accessors over a record.
pub struct Decoded<T: SessionData> {
    /// The accessors; fields a migration touched are marked changed. Stored fields are
    /// decoded on first access (under [`DecodePolicy::Strict`], all of them up front). Boxed:
    /// it holds a slot per field and is moved several times on the way to a handler.
    pub fields: Box<T::Fields>,
    /// The schema version found in the store (`None` when this schema never wrote), or the
    /// current version after a migration.
    pub stored_version: Option<u32>,
    /// Writes the migration made outside the schema's fields (removed old keys, the new
    /// version), to be saved with the next patch.
    pub extra: Vec<FieldWrite>,
    /// What did not fit at the record level (version, migration), under
    /// [`DecodePolicy::Lenient`]; each was logged as a warning. Fields that fail to decode
    /// are reported when they are decoded (see [`SchemaFields::decode_all`]).
    pub issues: Vec<DecodeError>,
}

impl<T: SessionData> fmt::Debug for Decoded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoded")
            .field("schema", &T::SCHEMA.name())
            .field("state", self.fields.state())
            .field("stored_version", &self.stored_version)
            .field("extra", &self.extra)
            .field("issues", &self.issues)
            .finish()
    }
}

/// The version this schema last stored in `stored`, if any.
///
/// ```
/// use session_runtime::{__private::RawRecord, decode, SessionData};
///
/// #[derive(SessionData)]
/// #[session(version = 2, migrate = up)]
/// struct Cart {
///     items: Vec<String>,
/// }
/// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
///
/// let record: RawRecord = [("items", r#"["apple"]"#), ("__v.Cart", "1")].into_iter().collect();
/// assert_eq!(decode::stored_version::<Cart>(&record)?, Some(1));
/// # Ok::<(), decode::DecodeError>(())
/// ```
pub fn stored_version<T: SessionData>(stored: &RawRecord) -> Result<Option<u32>, DecodeError> {
    schema_version(stored, T::SCHEMA)
}

// The generic entry points of this module are thin: each forwards to a function that is not
// generic, so that a schema's crate compiles the decoding, migration and encoding logic
// (and its logging) once, in this crate, not once per schema.

pub(crate) fn schema_version(
    stored: &RawRecord,
    schema: &'static Schema,
) -> Result<Option<u32>, DecodeError> {
    let Some(bytes) = stored.get(schema.version_key()) else {
        return Ok(None);
    };
    // Versions are written as plain digits; anything else goes through JSON for its error.
    if let Some(version) = crate::meta::parse_u64(bytes).and_then(|v| u32::try_from(v).ok()) {
        return Ok(Some(version));
    }
    JsonCodec::decode::<u32>(bytes)
        .map(Some)
        .map_err(|source| DecodeError::Version {
            schema: schema.name(),
            source,
        })
}

/// Whether loading `T` from a record with this stored version needs every key of the
/// schema's namespace (a migration will run), not just the schema's current keys.
///
/// ```
/// use session_runtime::{__private::RawRecord, decode, SessionData};
///
/// #[derive(SessionData)]
/// #[session(version = 2, migrate = up)]
/// struct Cart {
///     items: Vec<String>,
/// }
/// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
///
/// assert!(decode::needs_full_record::<Cart>(Some(1))); // the migration to 2 runs
/// assert!(!decode::needs_full_record::<Cart>(Some(2)));
/// assert!(!decode::needs_full_record::<Cart>(None)); // a new session
/// ```
pub fn needs_full_record<T: SessionData>(stored_version: Option<u32>) -> bool {
    schema_needs_full_record(T::SCHEMA, stored_version)
}

/// [`needs_full_record`] for `schema`.
pub(crate) fn schema_needs_full_record(schema: &Schema, stored_version: Option<u32>) -> bool {
    stored_version.is_some_and(|v| v < schema.version())
}

/// Reads `T` from a record.
///
/// Runs the migration hook for records of an older version, and applies `policy` to
/// records of a newer version and to fields that fail to decode. For a migration, `stored`
/// must hold every key of the schema's namespace (see [`needs_full_record`]).
///
/// ```
/// use session_runtime::{__private::RawRecord, decode, SessionData};
///
/// #[derive(SessionData)]
/// #[session(version = 2, migrate = up)]
/// struct Cart {
///     items: Vec<String>,
/// }
/// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
///
/// use session_runtime::DecodePolicy;
///
/// // A session read outside a request, by a background job, say.
/// let record: RawRecord = [("items", r#"["apple"]"#), ("__v.Cart", "2")].into_iter().collect();
/// let decoded = decode::decode::<Cart>(&record, DecodePolicy::Lenient)?;
/// assert_eq!(decoded.stored_version, Some(2));
/// assert!(decoded.issues.is_empty());
/// # Ok::<(), decode::DecodeError>(())
/// ```
pub fn decode<T: SessionData>(
    stored: &RawRecord,
    policy: DecodePolicy,
) -> Result<Decoded<T>, DecodeError> {
    let prepared = prepare(stored, policy, T::SCHEMA, &mut |from, before| {
        let mut raw = RawFields::<T::Codec>::from_map(before);
        T::migrate(from, &mut raw)?;
        Ok(raw.into_map())
    })?;
    let Prepared {
        record,
        state,
        stored_version,
        mut extra,
        issues,
    } = prepared;
    let mut fields = Box::new(T::Fields::from_record(record, state));
    if policy == DecodePolicy::Strict {
        if let Some(err) = fields.decode_all().into_iter().next() {
            return Err(err);
        }
    }
    if T::SCHEMA.is_indexed() {
        repair_index_terms(
            T::SCHEMA,
            stored,
            fields.state(),
            &|index| fields.index_term(index),
            &mut extra,
        );
    }
    Ok(Decoded {
        fields,
        stored_version,
        extra,
        issues,
    })
}

/// A schema's migration hook over its raw fields: the map before, the map after.
type MigrateFn<'a> = dyn FnMut(u32, BTreeMap<String, Vec<u8>>) -> Result<BTreeMap<String, Vec<u8>>, MigrationError>
    + 'a;

/// What `decode` knows before it builds the fields.
struct Prepared {
    record: RawRecord,
    state: FieldState,
    stored_version: Option<u32>,
    extra: Vec<FieldWrite>,
    issues: Vec<DecodeError>,
}

/// Checks the stored version against `schema`'s and runs its migration when the record is
/// older.
fn prepare(
    stored: &RawRecord,
    policy: DecodePolicy,
    schema: &'static Schema,
    migrate: &mut MigrateFn<'_>,
) -> Result<Prepared, DecodeError> {
    let current = schema.version();
    let mut issues = Vec::new();
    let mut extra = Vec::new();
    let mut state = FieldState::new();

    let stored_version = match schema_version(stored, schema) {
        Ok(v) => v,
        Err(err) if policy == DecodePolicy::Lenient => {
            tracing::warn!(schema = schema.name(), error = %Chain(&err), "ignoring invalid stored schema version");
            issues.push(err);
            None
        }
        Err(err) => return Err(err),
    };

    let mut record = stored.clone();
    let mut migrated = false;
    match stored_version {
        Some(stored_v) if stored_v > current => {
            let err = DecodeError::NewerVersion {
                schema: schema.name(),
                stored: stored_v,
                current,
            };
            if policy == DecodePolicy::Strict {
                return Err(err);
            }
            tracing::warn!(
                schema = schema.name(),
                stored = stored_v,
                current,
                "session record comes from a newer schema version; reading the fields this code knows and keeping the stored version"
            );
            issues.push(err);
        }
        Some(from) if from < current => {
            match run_migration(schema, migrate, stored, from, &mut state, &mut extra) {
                Ok(after) => {
                    record = after;
                    migrated = true;
                }
                Err(err) if policy == DecodePolicy::Lenient => {
                    tracing::warn!(schema = schema.name(), from, error = %Chain(&err), "session migration failed; reading the record as stored");
                    issues.push(err);
                }
                Err(err) => return Err(err),
            }
        }
        _ => {}
    }
    Ok(Prepared {
        record,
        state,
        stored_version: if migrated {
            Some(current)
        } else {
            stored_version
        },
        extra,
        issues,
    })
}

/// Writes the index term of an indexed field whose stored term does not match its value: a
/// session stored before the field was `#[session(index)]` (it becomes findable on its
/// next request), or one whose term was lost. Fields this request already changes write
/// their term anyway.
fn repair_index_terms(
    schema: &'static Schema,
    stored: &RawRecord,
    state: &FieldState,
    index_term: &dyn Fn(usize) -> Option<String>,
    extra: &mut Vec<FieldWrite>,
) {
    for (index, info) in schema.fields().iter().enumerate() {
        if info.index_key().is_empty() || state.is_changed(index) {
            continue;
        }
        let stored_term = stored.get(info.index_key());
        if stored_term.is_none() && stored.get(info.store_key()).is_none() {
            continue;
        }
        let term =
            index_term(index).filter(|term| term.len() <= crate::index::term::MAX_INDEX_TERM_LEN);
        if term.as_deref().map(str::as_bytes) != stored_term {
            extra.push((Cow::Borrowed(info.index_key()), term.map(Bytes::from)));
        }
    }
}

/// Runs the hook on the namespace's raw fields; marks touched schema fields in `state`,
/// records writes to other keys (and the new version) in `extra`, and returns the record
/// as the migration left it.
fn run_migration(
    schema: &'static Schema,
    migrate: &mut MigrateFn<'_>,
    stored: &RawRecord,
    from: u32,
    state: &mut FieldState,
    extra: &mut Vec<FieldWrite>,
) -> Result<RawRecord, DecodeError> {
    let mut all = stored.to_map();
    let before: BTreeMap<String, Vec<u8>> = all
        .iter()
        .filter_map(|(k, v)| {
            schema
                .local_key(k)
                .map(|local| (local.to_owned(), v.to_vec()))
        })
        .collect();
    let after = migrate(from, before.clone()).map_err(|source| DecodeError::Migration {
        schema: schema.name(),
        from,
        source,
    })?;

    // A map field's entries (and its key, when a migration turns a whole value into
    // entries) are written as they are, not through the field's change bits.
    let field_index = |key: &str| {
        schema
            .fields()
            .iter()
            .position(|f| f.is_persisted() && f.entry_prefix().is_none() && f.key() == key)
    };
    let mut touched: Vec<(&String, bool)> = Vec::new(); // (key, still present)
    for (key, value) in &after {
        if before.get(key) != Some(value) {
            touched.push((key, true));
        }
    }
    for key in before.keys() {
        if !after.contains_key(key) {
            touched.push((key, false));
        }
    }
    for (key, present) in touched {
        let store_key = schema.store_key(key);
        match after.get(key) {
            Some(value) => all.insert(FieldKey::new(&store_key), Bytes::from(value.clone())),
            None => all.remove(store_key.as_str()),
        };
        match (field_index(key), present) {
            (Some(index), true) => state.mark_set(index),
            (Some(index), false) => state.mark_removed(index),
            (None, _) => extra.push((
                Cow::Owned(store_key),
                after.get(key).cloned().map(Bytes::from),
            )),
        }
    }
    extra.push((
        Cow::Borrowed(schema.version_key()),
        Some(version_bytes(schema.version())),
    ));
    Ok(RawRecord::new(Arc::new(all)))
}

/// The stored form of a schema version. Versions below 10 (nearly all) are static bytes:
/// neither writing nor sharing them allocates.
fn version_bytes(version: u32) -> Bytes {
    const DIGITS: [&[u8]; 10] = [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"];
    match usize::try_from(version).ok().and_then(|v| DIGITS.get(v)) {
        Some(digit) => Bytes::from_static(digit),
        None => Bytes::from(version.to_string()),
    }
}

/// Appends the store writes for the changed fields of `fields` to `out`: set fields encoded
/// with the schema's codec, removed fields as removals, and the schema's version when the
/// store does not have it yet. Unchanged fields are neither decoded, encoded nor written.
///
/// ```
/// use session_runtime::{__private::RawRecord, decode, SessionData};
///
/// #[derive(SessionData)]
/// #[session(version = 2, migrate = up)]
/// struct Cart {
///     items: Vec<String>,
/// }
/// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
///
/// use session_runtime::{DecodePolicy, __private::SchemaFields};
///
/// let record: RawRecord = [("items", r#"["apple"]"#), ("__v.Cart", "2")].into_iter().collect();
/// let mut decoded = decode::decode::<Cart>(&record, DecodePolicy::Lenient)?;
/// decoded.fields.state_mut().mark_set(0); // as `set_items` would
/// let mut writes = Vec::new();
/// decode::collect_changes::<Cart>(&mut decoded.fields, decoded.stored_version, &mut writes)?;
/// assert_eq!(writes.len(), 1);
/// assert_eq!(writes[0].0, "items");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn collect_changes<T: SessionData>(
    fields: &mut T::Fields,
    stored_version: Option<u32>,
    out: &mut impl Extend<FieldWrite>,
) -> Result<(), EncodeError> {
    if fields.state().is_clean() {
        return Ok(());
    }
    changes(
        T::SCHEMA,
        &mut Encoding::<T::Fields, T::Codec>(fields, PhantomData),
        stored_version,
        &mut |write| out.extend([write]),
    )
}

/// A schema's fields as `changes` reaches them: one small adapter per schema instead of the
/// whole of `changes`.
trait FieldSource {
    fn state(&self) -> &FieldState;
    fn encode(&mut self, index: usize) -> Result<Vec<u8>, CodecError>;
    fn entry_writes(&mut self, index: usize, out: &mut Vec<FieldWrite>) -> Result<(), CodecError>;
    fn index_term(&self, index: usize) -> Option<String>;
}

struct Encoding<'a, F, C>(&'a mut F, PhantomData<C>);

impl<F: SchemaFields, C: Codec> FieldSource for Encoding<'_, F, C> {
    fn state(&self) -> &FieldState {
        self.0.state()
    }
    fn encode(&mut self, index: usize) -> Result<Vec<u8>, CodecError> {
        self.0.encode_field::<C>(index)
    }
    fn entry_writes(&mut self, index: usize, out: &mut Vec<FieldWrite>) -> Result<(), CodecError> {
        self.0.entry_writes::<C>(index, out)
    }
    fn index_term(&self, index: usize) -> Option<String> {
        self.0.index_term(index)
    }
}

/// The store writes of the changed fields of `fields`, given to `out` one by one.
fn changes(
    schema: &'static Schema,
    fields: &mut dyn FieldSource,
    stored_version: Option<u32>,
    out: &mut dyn FnMut(FieldWrite),
) -> Result<(), EncodeError> {
    // A copy of the change set (no allocation below 64 fields): encoding needs `fields`.
    let changed = fields.state().clone();
    for index in changed.set_fields() {
        let info = &schema.fields()[index];
        if info.entry_prefix().is_some() {
            let mut writes = Vec::new();
            fields
                .entry_writes(index, &mut writes)
                .map_err(|source| EncodeError {
                    schema: schema.name(),
                    field: info.name(),
                    source,
                })?;
            writes.into_iter().for_each(&mut *out);
            continue;
        }
        let bytes = fields.encode(index).map_err(|source| EncodeError {
            schema: schema.name(),
            field: info.name(),
            source,
        })?;
        out((Cow::Borrowed(info.store_key()), Some(Bytes::from(bytes))));
        // The index term goes in the same write as the field.
        if !info.index_key().is_empty() {
            let term = fields
                .index_term(index)
                .map(|term| crate::index::term::check_term(schema.name(), info.name(), term))
                .transpose()?
                .map(Bytes::from);
            out((Cow::Borrowed(info.index_key()), term));
        }
    }
    for index in fields.state().removed_fields() {
        let info = &schema.fields()[index];
        out((Cow::Borrowed(info.store_key()), None));
        if !info.index_key().is_empty() {
            out((Cow::Borrowed(info.index_key()), None));
        }
    }
    // Never downgrade: a record of a newer version keeps its version.
    if stored_version.is_none_or(|v| v < schema.version()) {
        out((
            Cow::Borrowed(schema.version_key()),
            Some(version_bytes(schema.version())),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_are_stored_as_decimal_text() {
        for version in [0, 1, 9, 10, 42, u32::MAX] {
            assert_eq!(
                super::version_bytes(version),
                version.to_string().as_bytes(),
                "{version}"
            );
        }
    }
}
