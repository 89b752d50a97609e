//! Map fields stored entry by entry (`#[session(entries)]`): the slot the generated accessors
//! keep a map in, the handle that changes it entry by entry, and the store writes of its
//! changes. The map and key types and the key encoding are in `entry_map`.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    error::Error as StdError,
    fmt,
    ops::Deref,
    sync::{Mutex, OnceLock},
};

use bytes::Bytes;

use crate::{
    chain::Chain,
    changes::FieldState,
    codec::CodecError,
    entry_map::{key_of, suffix_of, EntryKey, EntryMap},
    error::DecodeError,
    generated::DecodeFn,
    record::FieldWrite,
    record::RawRecord,
    schema::{FieldInfo, Schema},
};

/// A change to a map field that breaks one of its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntriesError {
    /// The map already holds its most entries; the new one was not added.
    TooManyEntries {
        /// The Rust field name.
        field: &'static str,
        /// The field's bound (`#[session(entries(max = N))]`).
        max: usize,
    },
    /// The key is too long for a store key; the entry was not added.
    KeyTooLong {
        /// The Rust field name.
        field: &'static str,
        /// The key's encoded length, in bytes.
        len: usize,
        /// The field's bound (`#[session(entries(max_key_len = N))]`).
        max: usize,
    },
}

impl fmt::Display for EntriesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyEntries { field, max } => write!(
                f,
                "session map `{field}` already holds its most entries ({max}); remove one first"
            ),
            Self::KeyTooLong { field, len, max } => write!(
                f,
                "a key of session map `{field}` is {len} bytes long once encoded, more than its \
                 bound of {max}"
            ),
        }
    }
}

impl StdError for EntriesError {}

/// An error response: `400 Bad Request` with the message, so a handler can answer a full
/// cart with `?`.
impl axum::response::IntoResponse for EntriesError {
    fn into_response(self) -> axum::response::Response {
        (http::StatusCode::BAD_REQUEST, self.to_string()).into_response()
    }
}

/// Which entries of a map field a request changed, as store-key suffixes (with their keys,
/// to find the values at save time), and whether it cleared the map first.
pub(crate) struct EntryChanges<K> {
    cleared: bool,
    keys: BTreeMap<String, K>,
}

impl<K> Default for EntryChanges<K> {
    fn default() -> Self {
        Self {
            cleared: false,
            keys: BTreeMap::new(),
        }
    }
}

/// The slot of a `#[session(entries)]` field in the generated accessor type.
///
/// The map is decoded whole on the first read of it (`items()`, `len()`, iteration), but
/// changing or reading single entries through [`EntriesMut`] decodes only those entries:
/// adding an item to a 100-line cart decodes nothing else. Until the whole map is decoded,
/// the entries decoded one by one wait in `partial`, and join the map when it is.
#[doc(hidden)]
pub struct EntriesCell<M: EntryMap> {
    map: OnceLock<M>,
    /// Behind a lock only so that a read through `&self` can merge it into the map.
    partial: Mutex<Partial<M>>,
    changes: EntryChanges<M::Key>,
}

/// The entries decoded or changed one by one before the whole map was decoded: the map of
/// those present, and every suffix looked at (present, or absent: removed or never stored).
struct Partial<M: EntryMap> {
    map: M,
    seen: BTreeMap<String, bool>,
}

impl<M: EntryMap> Default for Partial<M> {
    fn default() -> Self {
        Self {
            map: M::default(),
            seen: BTreeMap::new(),
        }
    }
}

impl<M: EntryMap> Default for EntriesCell<M> {
    fn default() -> Self {
        Self {
            map: OnceLock::new(),
            partial: Mutex::new(Partial::default()),
            changes: EntryChanges::default(),
        }
    }
}

impl<M: EntryMap> EntriesCell<M> {
    fn partial(&mut self) -> &mut Partial<M> {
        self.partial
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where a map field's stored entries come from: the record, and how to decode them.
struct Source<'r, V> {
    raw: &'r RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<V>,
}

impl<V> Clone for Source<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Source<'_, V> {}

impl<V> Source<'_, V> {
    fn info(&self) -> &'static FieldInfo {
        &self.schema.fields()[self.index]
    }

    /// The stored value of one entry, decoded; `None` when absent or bad (logged).
    fn one(&self, suffix: &str) -> Option<V> {
        let prefix = self.info().entry_prefix()?;
        let key = format!("{prefix}{suffix}");
        match self.raw.value(&key) {
            Ok(Some(bytes)) => match (self.decode)(&bytes) {
                Ok(value) => Some(value),
                Err(err) => {
                    bad_entry(self.schema, self.info(), key, Some(err));
                    None
                }
            },
            Ok(None) => None,
            Err(_) => {
                bad_entry(self.schema, self.info(), key, None);
                None
            }
        }
    }

    /// How many entries the store holds for the field (keys only, nothing decoded).
    fn stored_suffixes(&self) -> Vec<&str> {
        self.info()
            .entry_prefix()
            .map(|prefix| self.raw.entry_suffixes(prefix))
            .unwrap_or_default()
    }
}

/// One entry that did not decode: logged, and left out of the map.
fn bad_entry(
    schema: &'static Schema,
    info: &FieldInfo,
    key: String,
    source: Option<CodecError>,
) -> DecodeError {
    match &source {
        Some(err) => tracing::warn!(
            schema = schema.name(),
            field = info.name(),
            key = %key,
            error = %Chain(err),
            "session map entry failed to decode; leaving it out"
        ),
        None => tracing::warn!(
            schema = schema.name(),
            field = info.name(),
            key = %key,
            "session map entry's stored key or value is not one this code reads; leaving it out"
        ),
    }
    DecodeError::Entry {
        schema: schema.name(),
        field: info.name(),
        key,
        source,
    }
}

/// Decodes every stored entry of field `index`; an entry that fails is left out and its
/// failure returned.
fn decode_entries<M: EntryMap>(
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<M::Value>,
    errors: &mut Vec<DecodeError>,
) -> M {
    let info = &schema.fields()[index];
    let mut map = M::default();
    let Some(prefix) = info.entry_prefix() else {
        return map;
    };
    for (suffix, value) in raw.entries(prefix) {
        let Some(key) = key_of::<M::Key>(suffix) else {
            errors.push(bad_entry(schema, info, format!("{prefix}{suffix}"), None));
            continue;
        };
        let bytes = match value {
            Ok(bytes) => bytes,
            Err(_) => {
                errors.push(DecodeError::Sealed {
                    key: format!("{prefix}{suffix}"),
                });
                continue;
            }
        };
        match decode(&bytes) {
            Ok(value) => {
                map.insert_entry(key, value);
            }
            Err(err) => errors.push(bad_entry(
                schema,
                info,
                format!("{prefix}{suffix}"),
                Some(err),
            )),
        }
    }
    map
}

/// The whole map: decoded once, with the entries decoded or changed one by one merged in.
fn whole<'a, M: EntryMap>(
    map: &'a OnceLock<M>,
    partial: &Mutex<Partial<M>>,
    source: Source<'_, M::Value>,
    errors: &mut Vec<DecodeError>,
) -> &'a M {
    map.get_or_init(|| {
        let partial = std::mem::take(
            &mut *partial
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut map: M = decode_entries(
            source.raw,
            source.schema,
            source.index,
            source.decode,
            errors,
        );
        for (suffix, present) in &partial.seen {
            if !present {
                if let Some(key) = key_of::<M::Key>(suffix) {
                    map.remove_entry(&key);
                }
            }
        }
        for (key, value) in partial.map.into_entries() {
            map.insert_entry(key, value);
        }
        map
    })
}

fn source<'r, V>(
    raw: &'r RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<V>,
) -> Source<'r, V> {
    Source {
        raw,
        schema,
        index,
        decode,
    }
}

#[doc(hidden)]
#[inline]
pub fn entries_get<'a, M: EntryMap>(
    cell: &'a EntriesCell<M>,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<M::Value>,
) -> &'a M {
    whole(
        &cell.map,
        &cell.partial,
        source(raw, schema, index, decode),
        &mut Vec::new(),
    )
}

/// Decodes the map if it is not yet; the failures of its entries.
#[doc(hidden)]
pub fn entries_force<M: EntryMap>(
    cell: &mut EntriesCell<M>,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<M::Value>,
) -> Vec<DecodeError> {
    let mut errors = Vec::new();
    whole(
        &cell.map,
        &cell.partial,
        source(raw, schema, index, decode),
        &mut errors,
    );
    errors
}

/// The map out of its cell (for the whole struct); its changes stay in the cell.
#[doc(hidden)]
pub fn entries_take_map<M: EntryMap>(
    cell: &mut EntriesCell<M>,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<M::Value>,
) -> M {
    whole(
        &cell.map,
        &cell.partial,
        source(raw, schema, index, decode),
        &mut Vec::new(),
    );
    cell.map.take().unwrap_or_default()
}

/// `items_mut()`: a handle on the whole struct's map (`whole`), or on the cell.
#[doc(hidden)]
pub fn entries_mut<'a, M: EntryMap>(
    whole: Option<&'a mut M>,
    cell: &'a mut EntriesCell<M>,
    state: &'a mut FieldState,
    raw: &'a RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<M::Value>,
) -> EntriesMut<'a, M> {
    EntriesMut {
        whole,
        cell,
        state,
        source: source(raw, schema, index, decode),
    }
}

/// Replaces the whole map (`set_items`), in the whole struct (`whole`) or the cell: the
/// store's entries are cleared and these written.
#[doc(hidden)]
pub fn entries_set<M: EntryMap>(
    whole: Option<&mut M>,
    cell: &mut EntriesCell<M>,
    state: &mut FieldState,
    schema: &'static Schema,
    index: usize,
    value: M,
) -> Result<(), EntriesError> {
    let info = &schema.fields()[index];
    if value.entry_count() > info.max_entries() {
        return Err(EntriesError::TooManyEntries {
            field: info.name(),
            max: info.max_entries(),
        });
    }
    let mut keys = BTreeMap::new();
    for (key, _) in value.entries() {
        let suffix = checked_suffix(info, key)?;
        keys.insert(suffix, key.clone());
    }
    cell.changes = EntryChanges {
        cleared: true,
        keys,
    };
    match whole {
        Some(map) => *map = value,
        None => {
            cell.map = OnceLock::from(value);
            *cell.partial() = Partial::default();
        }
    }
    state.mark_replaced(index);
    Ok(())
}

/// Takes the whole map (`take_items`), from the whole struct (`whole`) or the cell: the
/// store's entries are cleared.
#[doc(hidden)]
pub fn entries_take<M: EntryMap>(
    whole: Option<&mut M>,
    cell: &mut EntriesCell<M>,
    state: &mut FieldState,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<M::Value>,
) -> M {
    cell.changes = EntryChanges {
        cleared: true,
        keys: BTreeMap::new(),
    };
    state.mark_replaced(index);
    match whole {
        Some(map) => std::mem::take(map),
        None => {
            let map = entries_take_map(cell, raw, schema, index, decode);
            cell.map = OnceLock::from(M::default());
            map
        }
    }
}

/// The store writes for the changed entries of a map field: the clear first (a `None`
/// write of the field's entry prefix), then each changed entry, set or removed.
#[doc(hidden)]
pub fn entries_writes<M: EntryMap>(
    whole: Option<&M>,
    cell: &mut EntriesCell<M>,
    info: &'static FieldInfo,
    encode: impl Fn(&M::Value) -> Result<Vec<u8>, CodecError>,
    out: &mut Vec<FieldWrite>,
) -> Result<(), CodecError> {
    let Some(prefix) = info.entry_prefix() else {
        return Ok(());
    };
    let changes = std::mem::take(&mut cell.changes);
    let map = match (whole, cell.map.get()) {
        (Some(map), _) | (None, Some(map)) => map,
        // Only single entries were touched: their values are in the partial map.
        (None, None) => {
            &cell
                .partial
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .map
        }
    };
    if changes.cleared {
        out.push((Cow::Borrowed(prefix), None));
    }
    for (suffix, key) in changes.keys {
        let value = match map.get_entry(&key) {
            Some(value) => Some(Bytes::from(encode(value)?)),
            None => None,
        };
        out.push((Cow::Owned(format!("{prefix}{suffix}")), value));
    }
    Ok(())
}

fn checked_suffix<K: EntryKey>(info: &FieldInfo, key: &K) -> Result<String, EntriesError> {
    let suffix = suffix_of(key);
    if suffix.len() > info.max_key_len() {
        return Err(EntriesError::KeyTooLong {
            field: info.name(),
            len: suffix.len(),
            max: info.max_key_len(),
        });
    }
    Ok(suffix)
}

/// Changes a `#[session(entries)]` map entry by entry: what `items_mut()` returns.
///
/// Each change marks only the entry it touches, and the next save writes only those
/// entries; reads go through `Deref` to the map itself. Insertions are bounded: a field
/// holds at most `#[session(entries(max = N))]` entries (default 1000) and an entry's key
/// is at most `max_key_len` bytes once encoded (default 128).
///
/// ```
/// use std::collections::BTreeMap;
/// use axum::{extract::Path, routing::post, Router};
/// use session_runtime::{EntriesError, Key, MemoryStore, SessionData, SessionLayer, TypedSession};
///
/// #[derive(SessionData)]
/// #[session(namespace = "cart")]
/// struct Cart {
///     /// Item → quantity.
///     #[session(entries(max = 100))]
///     items: BTreeMap<String, u32>,
/// }
///
/// async fn add(mut cart: TypedSession<Cart>, Path(item): Path<String>) -> Result<String, EntriesError> {
///     *cart.items_mut().get_or_insert_with(item, || 0)? += 1; // writes this entry only
///     Ok(format!("{} lines", cart.items().len()))
/// }
///
/// async fn remove(mut cart: TypedSession<Cart>, Path(item): Path<String>) -> &'static str {
///     match cart.items_mut().remove(item.as_str()) {
///         Some(_) => "removed",
///         None => "not in the cart",
///     }
/// }
///
/// async fn empty(mut cart: TypedSession<Cart>) {
///     cart.items_mut().clear(); // every entry the store holds when this request is saved
/// }
///
/// let app: Router = Router::new()
///     .route("/add/{item}", post(add))
///     .route("/remove/{item}", post(remove))
///     .route("/empty", post(empty))
///     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
/// ```
pub struct EntriesMut<'a, M: EntryMap> {
    /// The whole struct's map, after `data()`.
    whole: Option<&'a mut M>,
    cell: &'a mut EntriesCell<M>,
    state: &'a mut FieldState,
    source: Source<'a, M::Value>,
}

impl<M: EntryMap> EntriesMut<'_, M> {
    fn info(&self) -> &'static FieldInfo {
        self.source.info()
    }

    fn changed(&mut self, suffix: String, key: M::Key) {
        self.cell.changes.keys.insert(suffix, key);
        self.state.mark_replaced(self.source.index);
    }

    /// The whole map, decoded (once).
    fn map(&mut self) -> &mut M {
        if let Some(map) = self.whole.as_deref_mut() {
            return map;
        }
        whole(
            &self.cell.map,
            &self.cell.partial,
            self.source,
            &mut Vec::new(),
        );
        self.cell.map.get_mut().expect("decoded above")
    }

    /// Whether the whole map is decoded: single-entry operations then use it.
    fn is_whole(&self) -> bool {
        self.whole.is_some() || self.cell.map.get().is_some()
    }

    /// The map holding entry `suffix` as it stands: the whole map, or the partial one with
    /// that entry decoded from the store if it was not looked at yet.
    fn holding(&mut self, key: &M::Key, suffix: &str) -> &mut M {
        if self.is_whole() {
            return self.map();
        }
        let source = self.source;
        let partial = self.cell.partial();
        if !partial.seen.contains_key(suffix) {
            let value = source.one(suffix);
            partial.seen.insert(suffix.to_owned(), value.is_some());
            if let Some(value) = value {
                partial.map.insert_entry(key.clone(), value);
            }
        }
        &mut partial.map
    }

    /// How many entries the map holds, without decoding any (the partial map's view of
    /// the entries it looked at, the store's keys for the others).
    fn count(&mut self) -> usize {
        if self.is_whole() {
            return self.map().entry_count();
        }
        // The suffixes borrow the record, not this handle.
        let stored = self.source.stored_suffixes();
        let partial = self.cell.partial();
        let untouched = stored
            .iter()
            .filter(|suffix| !partial.seen.contains_key(**suffix))
            .count();
        untouched + partial.seen.values().filter(|present| **present).count()
    }

    /// Inserts an entry, returning the value it replaced. Only this entry is written, and
    /// only it is decoded (unless the map already was).
    ///
    /// # Errors
    ///
    /// [`EntriesError::TooManyEntries`] when the key is new and the map is full,
    /// [`EntriesError::KeyTooLong`] when the key is too long; the map is then unchanged.
    pub fn insert(
        &mut self,
        key: impl Into<M::Key>,
        value: M::Value,
    ) -> Result<Option<M::Value>, EntriesError> {
        let key = key.into();
        let suffix = checked_suffix(self.info(), &key)?;
        let present = self.holding(&key, &suffix).get_entry(&key).is_some();
        if !present && self.count() >= self.info().max_entries() {
            return Err(EntriesError::TooManyEntries {
                field: self.info().name(),
                max: self.info().max_entries(),
            });
        }
        let old = self.holding(&key, &suffix).insert_entry(key.clone(), value);
        if !self.is_whole() {
            self.cell.partial().seen.insert(suffix.clone(), true);
        }
        self.changed(suffix, key);
        Ok(old)
    }

    /// Removes an entry, returning its value. Only this entry is removed from the store
    /// (and decoded).
    pub fn remove<Q: ?Sized + ToOwned<Owned = M::Key>>(&mut self, key: &Q) -> Option<M::Value> {
        let key = key.to_owned();
        let suffix = suffix_of(&key);
        let old = self.holding(&key, &suffix).remove_entry(&key);
        if !self.is_whole() {
            self.cell.partial().seen.insert(suffix.clone(), false);
        }
        // Removed from the store even when it did not decode (and so is not in the map).
        self.changed(suffix, key);
        old
    }

    /// The value of an entry, mutably: the entry is marked changed (only it, and only it
    /// is decoded).
    pub fn get_mut<Q: ?Sized + ToOwned<Owned = M::Key>>(
        &mut self,
        key: &Q,
    ) -> Option<&mut M::Value> {
        let key = key.to_owned();
        let suffix = suffix_of(&key);
        self.holding(&key, &suffix).get_entry(&key)?;
        self.changed(suffix.clone(), key.clone());
        self.holding(&key, &suffix).get_entry_mut(&key)
    }

    /// The value of an entry, inserted with `make` when absent; marked changed (only it,
    /// and only it is decoded).
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert), when the entry is absent.
    pub fn get_or_insert_with(
        &mut self,
        key: impl Into<M::Key>,
        make: impl FnOnce() -> M::Value,
    ) -> Result<&mut M::Value, EntriesError> {
        let key = key.into();
        let suffix = checked_suffix(self.info(), &key)?;
        if self.holding(&key, &suffix).get_entry(&key).is_none() {
            self.insert(key.clone(), make())?;
        } else {
            self.changed(suffix.clone(), key.clone());
        }
        Ok(self
            .holding(&key, &suffix)
            .get_entry_mut(&key)
            .expect("present or inserted above"))
    }

    /// Keeps the entries `keep` says yes to; the others are removed (only they are
    /// written). It decodes the whole map. An entry `keep` changes in place is not
    /// written: change it with [`get_mut`](Self::get_mut).
    pub fn retain(&mut self, mut keep: impl FnMut(&M::Key, &mut M::Value) -> bool) {
        let mut removed = Vec::new();
        self.map().retain_entries(&mut |key, value| {
            let kept = keep(key, value);
            if !kept {
                removed.push(key.clone());
            }
            kept
        });
        for key in removed {
            self.changed(suffix_of(&key), key);
        }
    }

    /// Removes every entry (decoding none). The save removes every entry the store holds
    /// for the field at that moment, atomically, including entries other requests added
    /// since this one loaded; entries inserted after the clear, in this request, are
    /// written after it.
    pub fn clear(&mut self) {
        match self.whole.as_deref_mut() {
            Some(map) => *map = M::default(),
            None => {
                self.cell.map = OnceLock::from(M::default());
                *self.cell.partial() = Partial::default();
            }
        }
        self.cell.changes.keys.clear();
        self.cell.changes.cleared = true;
        self.state.mark_replaced(self.source.index);
    }
}

/// Reads the whole map (decoding it, once).
impl<M: EntryMap> Deref for EntriesMut<'_, M> {
    type Target = M;
    fn deref(&self) -> &M {
        match &self.whole {
            Some(map) => map,
            None => whole(
                &self.cell.map,
                &self.cell.partial,
                self.source,
                &mut Vec::new(),
            ),
        }
    }
}

impl<M: EntryMap + fmt::Debug> fmt::Debug for EntriesMut<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
