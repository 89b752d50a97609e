//! Map fields stored entry by entry: `#[session(entries)]`.
//!
//! A map field marked `#[session(entries)]` keeps each entry under a store key of its own:
//! the field's store key, [`ENTRY_SEPARATOR`], and the entry's key encoded as a store-key
//! suffix. Two requests that change different entries of one map both keep their change,
//! as two requests that change different fields do.
//!
//! # The key encoding
//!
//! An entry's key is turned into text by its [`EntryKey`] impl, then escaped: ASCII
//! letters, digits, `_` and `-` stay as they are, every other byte becomes `%` and two
//! uppercase hex digits, and the empty text becomes `~`. The escaped text never holds `#`,
//! `.` or `%` unescaped, so an entry's store key always starts with its own field's
//! `key#` and nothing else: no map key can reach another field, another schema's
//! namespace or the runtime's `__` metadata. The encoding is a bijection: a stored suffix
//! that is not exactly what encoding its decoded key gives (lowercase hex, an escaped
//! letter, `007` for the integer 7) is not an entry, so two store keys never name one map
//! key.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    error::Error as StdError,
    fmt::{self, Write as _},
    hash::{BuildHasher, Hash},
    ops::Deref,
    sync::OnceLock,
};

use bytes::Bytes;

use crate::{
    chain::Chain,
    changes::FieldState,
    codec::CodecError,
    decode::FieldWrite,
    error::DecodeError,
    generated::DecodeFn,
    record::RawRecord,
    schema::{FieldInfo, Schema},
};

/// Separates a map field's store key from its entries' keys (`items#sku-1`). Store keys of
/// fields may not contain it.
pub const ENTRY_SEPARATOR: char = '#';

/// The most entries a map field holds unless it says `#[session(entries(max = N))]`.
pub const DEFAULT_MAX_ENTRIES: usize = 1000;

/// The longest encoded entry key (in bytes) unless the field says
/// `#[session(entries(max_key_len = N))]`.
pub const DEFAULT_MAX_KEY_LEN: usize = 128;

/// The longest encoded entry key a field may allow: entry store keys must fit the SQL
/// stores' name column (512 bytes) with the field's own key.
pub const MAX_KEY_LEN_LIMIT: usize = 256;

/// A map key that can name an entry of a `#[session(entries)]` field.
///
/// Implemented for `String` and the integer types. Implement it for a key type of your
/// own (an ID newtype, an enum) by turning it into text and back; the runtime escapes the
/// text, so any text is fine. `from_entry_key(&to_entry_key(k))` must give `k` back, and
/// the text must be the same for equal keys: a stored key whose text does not come back
/// unchanged is ignored (with a warning), so that no two store keys name one entry.
///
/// ```
/// use std::borrow::Cow;
/// use session_runtime::EntryKey;
///
/// #[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
/// struct Sku(String);
///
/// impl EntryKey for Sku {
///     fn to_entry_key(&self) -> Cow<'_, str> {
///         Cow::Borrowed(&self.0)
///     }
///     fn from_entry_key(text: &str) -> Option<Self> {
///         Some(Sku(text.to_owned()))
///     }
/// }
/// # assert_eq!(Sku::from_entry_key("a").unwrap().0, "a");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the key of a `#[session(entries)]` map",
    label = "an entry's key becomes part of its store key",
    note = "use `String` or an integer type, or implement `session_runtime::EntryKey` for `{Self}`"
)]
pub trait EntryKey: Clone + Send + Sync + 'static {
    /// The key as text (escaped by the runtime).
    fn to_entry_key(&self) -> Cow<'_, str>;
    /// The key for a text `to_entry_key` gave, or `None` when the text is not one.
    fn from_entry_key(text: &str) -> Option<Self>;
}

impl EntryKey for String {
    fn to_entry_key(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
    fn from_entry_key(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
}

macro_rules! integer_keys {
    ($($ty:ty),*) => {$(
        impl EntryKey for $ty {
            fn to_entry_key(&self) -> Cow<'_, str> {
                Cow::Owned(self.to_string())
            }
            fn from_entry_key(text: &str) -> Option<Self> {
                text.parse().ok()
            }
        }
    )*};
}

integer_keys!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

/// A map type a `#[session(entries)]` field can have: `BTreeMap<K, V>` and
/// `HashMap<K, V, S>`, with `K: EntryKey`.
#[diagnostic::on_unimplemented(
    message = "`#[session(entries)]` needs a map type, not `{Self}`",
    label = "a field stored entry by entry must be a map",
    note = "use `BTreeMap<K, V>` or `HashMap<K, V>`, with a key type that implements `session_runtime::EntryKey` (`String` and the integer types do)"
)]
pub trait EntryMap: Default + Send + Sync + 'static {
    /// The map's key type.
    type Key: EntryKey;
    /// The map's value type.
    type Value: Send + Sync + 'static;
    /// The value under `key`.
    fn get_entry(&self, key: &Self::Key) -> Option<&Self::Value>;
    /// The value under `key`, mutably.
    fn get_entry_mut(&mut self, key: &Self::Key) -> Option<&mut Self::Value>;
    /// Inserts, returning the value replaced.
    fn insert_entry(&mut self, key: Self::Key, value: Self::Value) -> Option<Self::Value>;
    /// Removes, returning the value removed.
    fn remove_entry(&mut self, key: &Self::Key) -> Option<Self::Value>;
    /// How many entries.
    fn entry_count(&self) -> usize;
    /// Every entry, in the map's order.
    fn entries(&self) -> Box<dyn Iterator<Item = (&Self::Key, &Self::Value)> + '_>;
    /// Keeps the entries `keep` says yes to.
    fn retain_entries(&mut self, keep: &mut dyn FnMut(&Self::Key, &mut Self::Value) -> bool);
}

impl<K: EntryKey + Ord, V: Send + Sync + 'static> EntryMap for BTreeMap<K, V> {
    type Key = K;
    type Value = V;
    fn get_entry(&self, key: &K) -> Option<&V> {
        self.get(key)
    }
    fn get_entry_mut(&mut self, key: &K) -> Option<&mut V> {
        self.get_mut(key)
    }
    fn insert_entry(&mut self, key: K, value: V) -> Option<V> {
        self.insert(key, value)
    }
    fn remove_entry(&mut self, key: &K) -> Option<V> {
        self.remove(key)
    }
    fn entry_count(&self) -> usize {
        self.len()
    }
    fn entries(&self) -> Box<dyn Iterator<Item = (&K, &V)> + '_> {
        Box::new(self.iter())
    }
    fn retain_entries(&mut self, keep: &mut dyn FnMut(&K, &mut V) -> bool) {
        self.retain(|k, v| keep(k, v));
    }
}

impl<K, V, S> EntryMap for HashMap<K, V, S>
where
    K: EntryKey + Hash + Eq,
    V: Send + Sync + 'static,
    S: BuildHasher + Default + Send + Sync + 'static,
{
    type Key = K;
    type Value = V;
    fn get_entry(&self, key: &K) -> Option<&V> {
        self.get(key)
    }
    fn get_entry_mut(&mut self, key: &K) -> Option<&mut V> {
        self.get_mut(key)
    }
    fn insert_entry(&mut self, key: K, value: V) -> Option<V> {
        self.insert(key, value)
    }
    fn remove_entry(&mut self, key: &K) -> Option<V> {
        self.remove(key)
    }
    fn entry_count(&self) -> usize {
        self.len()
    }
    fn entries(&self) -> Box<dyn Iterator<Item = (&K, &V)> + '_> {
        Box::new(self.iter())
    }
    fn retain_entries(&mut self, keep: &mut dyn FnMut(&K, &mut V) -> bool) {
        self.retain(|k, v| keep(k, v));
    }
}

fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// The store-key suffix for an entry key's text.
pub(crate) fn encode_suffix(text: &str) -> String {
    if text.is_empty() {
        return "~".to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if is_plain(byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The text of a store-key suffix, if it is exactly what [`encode_suffix`] gives for it.
pub(crate) fn decode_suffix(suffix: &str) -> Option<String> {
    if suffix == "~" {
        return Some(String::new());
    }
    if suffix.is_empty() {
        return None;
    }
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let bytes = suffix.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if is_plain(byte) {
            out.push(byte);
            at += 1;
        } else if byte == b'%' && at + 3 <= bytes.len() {
            let decoded = hex(bytes[at + 1])? << 4 | hex(bytes[at + 2])?;
            if is_plain(decoded) {
                return None;
            }
            out.push(decoded);
            at += 3;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// The suffix naming `key`.
fn suffix_of<K: EntryKey>(key: &K) -> String {
    encode_suffix(&key.to_entry_key())
}

/// The key a stored suffix names, if it names one (canonically).
pub(crate) fn key_of<K: EntryKey>(suffix: &str) -> Option<K> {
    let text = decode_suffix(suffix)?;
    let key = K::from_entry_key(&text)?;
    (key.to_entry_key() == text).then_some(key)
}

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

/// The slot of a `#[session(entries)]` field in the generated accessor type: the map,
/// decoded on first use, and the entries changed.
#[doc(hidden)]
pub struct EntriesCell<M: EntryMap> {
    map: OnceLock<M>,
    changes: EntryChanges<M::Key>,
}

impl<M: EntryMap> Default for EntriesCell<M> {
    fn default() -> Self {
        Self {
            map: OnceLock::new(),
            changes: EntryChanges::default(),
        }
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

fn force<'a, M: EntryMap>(
    cell: &'a OnceLock<M>,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<M::Value>,
) -> &'a M {
    cell.get_or_init(|| decode_entries(raw, schema, index, decode, &mut Vec::new()))
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
    force(&cell.map, raw, schema, index, decode)
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
    if cell.map.get().is_none() {
        cell.map = OnceLock::from(decode_entries::<M>(raw, schema, index, decode, &mut errors));
    }
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
    match cell.map.take() {
        Some(map) => map,
        None => decode_entries(raw, schema, index, decode, &mut Vec::new()),
    }
}

/// `items_mut()` on the decoded map (the cell's or the whole struct's).
#[doc(hidden)]
pub fn entries_mut<'a, M: EntryMap>(
    map: Option<&'a mut M>,
    cell: &'a mut EntriesCell<M>,
    state: &'a mut FieldState,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<M::Value>,
) -> EntriesMut<'a, M> {
    let map = match map {
        Some(map) => map,
        None => {
            force(&cell.map, raw, schema, index, decode);
            cell.map.get_mut().expect("decoded above")
        }
    };
    EntriesMut {
        map,
        changes: &mut cell.changes,
        state,
        index,
        info: &schema.fields()[index],
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
        None => cell.map = OnceLock::from(value),
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
    map: Option<&M>,
    cell: &mut EntriesCell<M>,
    info: &'static FieldInfo,
    encode: impl Fn(&M::Value) -> Result<Vec<u8>, CodecError>,
    out: &mut Vec<FieldWrite>,
) -> Result<(), CodecError> {
    let Some(prefix) = info.entry_prefix() else {
        return Ok(());
    };
    let map = map.or_else(|| cell.map.get());
    let changes = std::mem::take(&mut cell.changes);
    if changes.cleared {
        out.push((Cow::Borrowed(prefix), None));
    }
    for (suffix, key) in changes.keys {
        let value = match map.and_then(|map| map.get_entry(&key)) {
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
    map: &'a mut M,
    changes: &'a mut EntryChanges<M::Key>,
    state: &'a mut FieldState,
    index: usize,
    info: &'static FieldInfo,
}

impl<M: EntryMap> EntriesMut<'_, M> {
    fn changed(&mut self, suffix: String, key: M::Key) {
        self.changes.keys.insert(suffix, key);
        self.state.mark_replaced(self.index);
    }

    /// Inserts an entry, returning the value it replaced. Only this entry is written.
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
        let suffix = checked_suffix(self.info, &key)?;
        if self.map.get_entry(&key).is_none() && self.map.entry_count() >= self.info.max_entries() {
            return Err(EntriesError::TooManyEntries {
                field: self.info.name(),
                max: self.info.max_entries(),
            });
        }
        let old = self.map.insert_entry(key.clone(), value);
        self.changed(suffix, key);
        Ok(old)
    }

    /// Removes an entry, returning its value. Only this entry is removed from the store.
    pub fn remove<Q: ?Sized + ToOwned<Owned = M::Key>>(&mut self, key: &Q) -> Option<M::Value> {
        let key = key.to_owned();
        let old = self.map.remove_entry(&key);
        // Removed from the store even when it did not decode (and so is not in the map).
        self.changed(suffix_of(&key), key);
        old
    }

    /// The value of an entry, mutably: the entry is marked changed (only it).
    pub fn get_mut<Q: ?Sized + ToOwned<Owned = M::Key>>(
        &mut self,
        key: &Q,
    ) -> Option<&mut M::Value> {
        let key = key.to_owned();
        self.map.get_entry(&key)?;
        self.changed(suffix_of(&key), key.clone());
        self.map.get_entry_mut(&key)
    }

    /// The value of an entry, inserted with `make` when absent; marked changed.
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
        if self.map.get_entry(&key).is_none() {
            self.insert(key.clone(), make())?;
        } else {
            self.changed(suffix_of(&key), key.clone());
        }
        Ok(self
            .map
            .get_entry_mut(&key)
            .expect("present or inserted above"))
    }

    /// Keeps the entries `keep` says yes to; the others are removed (only they are
    /// written). An entry `keep` changes in place is not written: change it with
    /// [`get_mut`](Self::get_mut).
    pub fn retain(&mut self, mut keep: impl FnMut(&M::Key, &mut M::Value) -> bool) {
        let mut removed = Vec::new();
        self.map.retain_entries(&mut |key, value| {
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

    /// Removes every entry. The save removes every entry the store holds for the field at
    /// that moment, atomically, including entries other requests added since this one
    /// loaded; entries inserted after the clear, in this request, are written after it.
    pub fn clear(&mut self) {
        let empty = M::default();
        *self.map = empty;
        self.changes.keys.clear();
        self.changes.cleared = true;
        self.state.mark_replaced(self.index);
    }
}

impl<M: EntryMap> Deref for EntriesMut<'_, M> {
    type Target = M;
    fn deref(&self) -> &M {
        self.map
    }
}

impl<M: EntryMap + fmt::Debug> fmt::Debug for EntriesMut<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.map, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_round_trip_and_only_canonical_ones_decode() {
        for text in [
            "", "a", "sku-1_A", "a#b", "__v.x", "a.b", "%", "%41", "~", "ключ", "a b", "#",
        ] {
            let suffix = encode_suffix(text);
            assert!(
                suffix
                    .bytes()
                    .all(|b| is_plain(b) || b == b'%' || b == b'~'),
                "{suffix}"
            );
            assert!(!suffix.contains('#') && !suffix.contains('.'), "{suffix}");
            assert_eq!(decode_suffix(&suffix).as_deref(), Some(text), "{text:?}");
        }
        for bad in [
            "", "%41", "%2a", "%2", "%", "a#b", "a.b", "~~", "%FF%FE", "a~",
        ] {
            assert_eq!(decode_suffix(bad), None, "{bad:?}");
        }
        assert_eq!(encode_suffix("a.b#c"), "a%2Eb%23c");
    }

    #[test]
    fn integer_keys_are_canonical() {
        assert_eq!(key_of::<u32>("7"), Some(7));
        assert_eq!(key_of::<u32>("007"), None);
        assert_eq!(key_of::<u32>("%2B7"), None);
        assert_eq!(key_of::<i64>("-3"), Some(-3));
        assert_eq!(suffix_of(&-3i64), "-3");
        assert_eq!(key_of::<String>("a%20b").as_deref(), Some("a b"));
    }
}
