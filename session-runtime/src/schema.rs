//! The contract between `#[derive(SessionData)]` and the runtime.

use std::{
    borrow::{Borrow, Cow},
    collections::{BTreeMap, HashMap},
    fmt,
    hash::{Hash, Hasher},
    ops::Deref,
    sync::{Arc, OnceLock},
};

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    codec::Codec, decode::DecodeError, error::Chain, migrate::RawFields, CodecError, MigrationError,
};

/// A session schema: a struct whose fields are stored one by one.
///
/// Implement it with `#[derive(SessionData)]`; the derive also generates the typed
/// accessors, reached through [`TypedSession<T>`](crate::TypedSession). For each field
/// `f: F`:
///
/// | accessor | does | marks |
/// |---|---|---|
/// | `f(&self) -> &F` | reads | nothing |
/// | `set_f(&mut self, F)` | replaces | `f` changed |
/// | `f_mut(&mut self) -> &mut F` | borrows mutably | `f` changed |
/// | `take_f(&mut self) -> F` | returns it and resets it to its default | `f` removed from the store |
///
/// Fields are decoded lazily: a request pays only for the fields it touches. The whole
/// struct is available with `TypedSession::data`, which decodes every field once.
///
/// # Attributes
///
/// On the struct, `#[session(...)]` takes:
/// - `version = N` (N ≥ 1, default 1): the schema's current version, stored with the record.
/// - `migrate = path`: a `fn(u32, &mut RawFields) -> Result<(), MigrationError>` that reshapes
///   records of older versions; see [`RawFields`]. Needs `version`.
/// - `namespace = "x"`: prefixes every store key with `x.`, so schemas sharing a session keep
///   apart.
/// - `codec = path`: a [`Codec`] type that encodes this schema's fields (default
///   [`JsonCodec`](crate::JsonCodec)); the migration hook then takes `&mut RawFields<path>`.
///   The runtime's own metadata (versions, times) stays decimal text whatever the codec.
/// - `crate = "path"`: where to find this crate if it was renamed in `Cargo.toml`.
///
/// On a field:
/// - `rename = "k"`: the store key (default: the field's name).
/// - `skip`: never stored; the field holds its default on every load.
/// - `default = path`: a `fn() -> F` giving the value when the field is absent from the store
///   (default: `F::default()`). Every field needs a default: `Default` or this attribute.
///
/// Store keys may not be empty, contain `.` or start with `__` (the runtime's own metadata).
///
/// # Example
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use session_runtime::SessionData;
///
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Item { sku: String, qty: u32 }
///
/// fn default_theme() -> String { "light".into() }
///
/// #[derive(SessionData)]
/// #[session(namespace = "cart")]
/// struct Cart {
///     user_id: Option<u64>,
///     items: Vec<Item>,
///     #[session(rename = "th", default = default_theme)]
///     theme: String,
/// }
/// # fn main() {}
/// ```
pub trait SessionData: Sized + Send + Sync + 'static {
    /// The generated accessor type: the stored record, the fields decoded so far, and which
    /// fields changed.
    type Fields: SchemaFields<Data = Self>;

    /// How this schema's fields are encoded in the store: [`JsonCodec`](crate::JsonCodec)
    /// unless the struct says `#[session(codec = path)]`.
    type Codec: Codec;

    /// The schema's name, version, namespace and fields.
    const SCHEMA: &'static Schema;

    /// Reshapes the raw fields of a record stored by version `from` into the current version.
    ///
    /// The derive forwards to the `migrate = path` hook; without one, records are read as
    /// they are.
    fn migrate(from: u32, fields: &mut RawFields<Self::Codec>) -> Result<(), MigrationError> {
        let _ = (from, fields);
        Ok(())
    }
}

/// The generated accessor type of a schema.
///
/// Implemented by `#[derive(SessionData)]`; there is no reason to implement it by hand. The
/// runtime uses these methods to build, save and inspect a schema's fields.
pub trait SchemaFields: Send + Sync + Sized + 'static {
    /// The schema.
    type Data: SessionData<Fields = Self>;

    /// Accessors over a stored record; each field is decoded from it on first access.
    fn from_record(record: RawRecord, state: FieldState) -> Self;

    /// Which fields changed.
    fn state(&self) -> &FieldState;

    /// Which fields changed, mutably. Changing it does not change any value.
    fn state_mut(&mut self) -> &mut FieldState;

    /// Encodes the current value of the field at `index` (decoding it first if needed).
    fn encode_field<C: Codec>(&mut self, index: usize) -> Result<Vec<u8>, CodecError>;

    /// Decodes every stored field not decoded yet. Fields that fail take their default; the
    /// failures are returned (and logged).
    fn decode_all(&mut self) -> Vec<crate::decode::DecodeError>;

    /// The whole struct, decoding every field not decoded yet (once).
    fn data(&mut self) -> &Self::Data;

    /// The whole struct, by value.
    fn into_data(self) -> Self::Data;
}

/// A record's fields as a store holds them: store key → encoded value. Cheap to share: the
/// keys are [`FieldKey`]s and the values are [`Bytes`]. Hashed with FxHash: the keys are
/// the application's own field names, never chosen by a client.
pub type FieldMap = HashMap<FieldKey, Bytes, rustc_hash::FxBuildHasher>;

/// The name of a stored field, as a [`FieldMap`] key.
///
/// A schema's own keys are `&'static str`s and are kept as such (storing a field written by
/// a request allocates nothing for its name); a name read back from a store is a shared
/// `Arc<str>`. Either way it compares, hashes and borrows as the `str` it holds, so a map
/// is looked up with plain `&str`s.
///
/// ```
/// use session_runtime::{FieldKey, FieldMap};
///
/// let mut fields = FieldMap::default();
/// fields.insert(FieldKey::from("user_id"), "42".into());
/// fields.insert(FieldKey::new(&format!("cart.{}", "items")), "[]".into());
/// assert_eq!(fields.get("user_id").map(|v| &v[..]), Some(&b"42"[..]));
/// assert!(fields.contains_key("cart.items"));
/// ```
#[derive(Clone)]
pub struct FieldKey(KeyName);

#[derive(Clone)]
enum KeyName {
    Static(&'static str),
    Shared(Arc<str>),
}

impl FieldKey {
    /// A key for a name known at compile time (no allocation).
    ///
    /// ```
    /// use session_runtime::FieldKey;
    ///
    /// const THEME: FieldKey = FieldKey::from_static("theme");
    /// assert_eq!(THEME.as_str(), "theme");
    /// ```
    pub const fn from_static(name: &'static str) -> Self {
        Self(KeyName::Static(name))
    }

    /// A key for any name (copies it into a shared string).
    ///
    /// ```
    /// use session_runtime::FieldKey;
    ///
    /// let from_the_store = String::from("theme");
    /// let key = FieldKey::new(&from_the_store);
    /// assert_eq!(key, FieldKey::from_static("theme"));
    /// ```
    pub fn new(name: &str) -> Self {
        Self(KeyName::Shared(Arc::from(name)))
    }

    /// The name.
    ///
    /// ```
    /// use session_runtime::FieldKey;
    ///
    /// assert_eq!(FieldKey::from("items").as_str(), "items");
    /// ```
    pub fn as_str(&self) -> &str {
        match &self.0 {
            KeyName::Static(name) => name,
            KeyName::Shared(name) => name,
        }
    }
}

impl Deref for FieldKey {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for FieldKey {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for FieldKey {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for FieldKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for FieldKey {}

impl PartialOrd for FieldKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FieldKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for FieldKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, which `Borrow<str>` requires.
        self.as_str().hash(state);
    }
}

impl fmt::Debug for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for FieldKey {
    fn from(name: &'static str) -> Self {
        Self::from_static(name)
    }
}

impl From<String> for FieldKey {
    fn from(name: String) -> Self {
        Self(KeyName::Shared(Arc::from(name)))
    }
}

impl From<Arc<str>> for FieldKey {
    fn from(name: Arc<str>) -> Self {
        Self(KeyName::Shared(name))
    }
}

impl From<Cow<'static, str>> for FieldKey {
    fn from(name: Cow<'static, str>) -> Self {
        match name {
            Cow::Borrowed(name) => Self::from_static(name),
            Cow::Owned(name) => Self::from(name),
        }
    }
}

/// A read-only view of a stored record: the fields as loaded, plus (during a request) the
/// writes not saved yet. Schemas decode their fields from it.
#[derive(Debug, Clone, Default)]
pub struct RawRecord {
    /// `None` for an empty record (no map allocated).
    base: Option<Arc<FieldMap>>,
    overlay: Option<Arc<BTreeMap<Cow<'static, str>, Option<Bytes>>>>,
}

impl RawRecord {
    /// A view of `fields`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use session_runtime::{FieldMap, RawRecord};
    ///
    /// let mut fields = FieldMap::default();
    /// fields.insert("theme".into(), "\"dark\"".into());
    /// let record = RawRecord::new(Arc::new(fields));
    /// assert_eq!(record.get("theme"), Some(&b"\"dark\""[..]));
    /// ```
    pub fn new(fields: Arc<FieldMap>) -> Self {
        Self {
            base: Some(fields),
            overlay: None,
        }
    }

    pub(crate) fn from_parts(
        base: Option<Arc<FieldMap>>,
        overlay: Option<Arc<BTreeMap<Cow<'static, str>, Option<Bytes>>>>,
    ) -> Self {
        Self { base, overlay }
    }

    /// The encoded value of a store key.
    ///
    /// ```
    /// use session_runtime::RawRecord;
    ///
    /// let record: RawRecord = [("count", "3")].into_iter().collect();
    /// assert_eq!(record.get("count"), Some(&b"3"[..]));
    /// assert_eq!(record.get("missing"), None);
    /// ```
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        if let Some(value) = self.overlay.as_ref().and_then(|o| o.get(key)) {
            return value.as_deref();
        }
        self.base.as_ref()?.get(key).map(|v| &v[..])
    }

    /// Every key and value, the unsaved writes applied.
    ///
    /// ```
    /// use session_runtime::RawRecord;
    ///
    /// let record: RawRecord = [("a", "1"), ("b", "2")].into_iter().collect();
    /// assert_eq!(record.to_map().len(), 2);
    /// ```
    pub fn to_map(&self) -> FieldMap {
        let mut map = self.base.as_deref().cloned().unwrap_or_default();
        if let Some(overlay) = &self.overlay {
            for (key, value) in overlay.iter() {
                match value {
                    Some(v) => map.insert(FieldKey::from(key.clone()), v.clone()),
                    None => map.remove(key.as_ref()),
                };
            }
        }
        map
    }
}

impl<K: AsRef<str>, V: Into<Bytes>> FromIterator<(K, V)> for RawRecord {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::new(Arc::new(
            iter.into_iter()
                .map(|(k, v)| (FieldKey::new(k.as_ref()), v.into()))
                .collect(),
        ))
    }
}

impl From<HashMap<String, Vec<u8>>> for RawRecord {
    fn from(map: HashMap<String, Vec<u8>>) -> Self {
        map.into_iter().collect()
    }
}

/// Static description of a schema, generated by the derive.
#[derive(Debug)]
pub struct Schema {
    name: &'static str,
    version: u32,
    namespace: Option<&'static str>,
    version_key: &'static str,
    fields: &'static [FieldInfo],
    load_keys: &'static [&'static str],
}

impl Schema {
    #[doc(hidden)]
    pub const fn new(
        name: &'static str,
        version: u32,
        namespace: Option<&'static str>,
        version_key: &'static str,
        fields: &'static [FieldInfo],
        load_keys: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            version,
            namespace,
            version_key,
            fields,
            load_keys,
        }
    }

    /// The struct's name.
    ///
    /// ```
    /// use session_runtime::SessionData;
    ///
    /// #[derive(SessionData)]
    /// #[session(namespace = "shop", version = 2, migrate = up)]
    /// struct Cart {
    ///     items: Vec<String>,
    ///     #[session(rename = "th")]
    ///     theme: String,
    ///     #[session(skip)]
    ///     scratch: u32,
    /// }
    /// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
    ///
    /// assert_eq!(Cart::SCHEMA.name(), "Cart");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The version the code declares (`#[session(version = N)]`, default 1).
    ///
    /// ```
    /// use session_runtime::SessionData;
    ///
    /// #[derive(SessionData)]
    /// #[session(namespace = "shop", version = 2, migrate = up)]
    /// struct Cart {
    ///     items: Vec<String>,
    ///     #[session(rename = "th")]
    ///     theme: String,
    ///     #[session(skip)]
    ///     scratch: u32,
    /// }
    /// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
    ///
    /// assert_eq!(Cart::SCHEMA.version(), 2);
    /// ```
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The namespace, if any (`#[session(namespace = "x")]`).
    ///
    /// ```
    /// use session_runtime::SessionData;
    ///
    /// #[derive(SessionData)]
    /// #[session(namespace = "shop", version = 2, migrate = up)]
    /// struct Cart {
    ///     items: Vec<String>,
    ///     #[session(rename = "th")]
    ///     theme: String,
    ///     #[session(skip)]
    ///     scratch: u32,
    /// }
    /// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
    ///
    /// assert_eq!(Cart::SCHEMA.namespace(), Some("shop"));
    /// ```
    pub fn namespace(&self) -> Option<&'static str> {
        self.namespace
    }

    /// The store key holding this schema's stored version: `__v.<namespace>`, or
    /// `__v.<StructName>` without a namespace.
    ///
    /// ```
    /// use session_runtime::SessionData;
    ///
    /// #[derive(SessionData)]
    /// #[session(namespace = "shop", version = 2, migrate = up)]
    /// struct Cart {
    ///     items: Vec<String>,
    ///     #[session(rename = "th")]
    ///     theme: String,
    ///     #[session(skip)]
    ///     scratch: u32,
    /// }
    /// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
    ///
    /// assert_eq!(Cart::SCHEMA.version_key(), "__v.shop");
    /// ```
    pub fn version_key(&self) -> &'static str {
        self.version_key
    }

    /// Every field, in declaration order; a field's index is its position here.
    ///
    /// ```
    /// use session_runtime::SessionData;
    ///
    /// #[derive(SessionData)]
    /// #[session(namespace = "shop", version = 2, migrate = up)]
    /// struct Cart {
    ///     items: Vec<String>,
    ///     #[session(rename = "th")]
    ///     theme: String,
    ///     #[session(skip)]
    ///     scratch: u32,
    /// }
    /// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
    ///
    /// let names: Vec<&str> = Cart::SCHEMA.fields().iter().map(|f| f.name()).collect();
    /// assert_eq!(names, ["items", "theme", "scratch"]);
    /// ```
    pub fn fields(&self) -> &'static [FieldInfo] {
        self.fields
    }

    /// The store keys a load of this schema asks for: its stored fields, its version, and
    /// the session's metadata.
    ///
    /// ```
    /// use session_runtime::SessionData;
    ///
    /// #[derive(SessionData)]
    /// #[session(namespace = "shop", version = 2, migrate = up)]
    /// struct Cart {
    ///     items: Vec<String>,
    ///     #[session(rename = "th")]
    ///     theme: String,
    ///     #[session(skip)]
    ///     scratch: u32,
    /// }
    /// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
    ///
    /// let keys = Cart::SCHEMA.load_keys();
    /// assert!(keys.contains(&"shop.items") && keys.contains(&"shop.th"));
    /// assert!(keys.contains(&"__v.shop"));
    /// ```
    pub fn load_keys(&self) -> &'static [&'static str] {
        self.load_keys
    }

    /// Whether a store key belongs to this schema's namespace (including keys of fields the
    /// schema no longer has). Metadata keys (`__...`) never do.
    ///
    /// ```
    /// use session_runtime::SessionData;
    ///
    /// #[derive(SessionData)]
    /// #[session(namespace = "shop", version = 2, migrate = up)]
    /// struct Cart {
    ///     items: Vec<String>,
    ///     #[session(rename = "th")]
    ///     theme: String,
    ///     #[session(skip)]
    ///     scratch: u32,
    /// }
    /// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
    ///
    /// assert!(Cart::SCHEMA.owns_key("shop.items"));
    /// assert!(Cart::SCHEMA.owns_key("shop.removed_long_ago"));
    /// assert!(!Cart::SCHEMA.owns_key("auth.user"));
    /// ```
    pub fn owns_key(&self, store_key: &str) -> bool {
        self.local_key(store_key).is_some()
    }

    /// The key inside the namespace for a store key of this schema's namespace.
    ///
    /// ```
    /// use session_runtime::SessionData;
    ///
    /// #[derive(SessionData)]
    /// #[session(namespace = "shop", version = 2, migrate = up)]
    /// struct Cart {
    ///     items: Vec<String>,
    ///     #[session(rename = "th")]
    ///     theme: String,
    ///     #[session(skip)]
    ///     scratch: u32,
    /// }
    /// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
    ///
    /// assert_eq!(Cart::SCHEMA.local_key("shop.th"), Some("th"));
    /// assert_eq!(Cart::SCHEMA.local_key("auth.user"), None);
    /// ```
    pub fn local_key<'k>(&self, store_key: &'k str) -> Option<&'k str> {
        if store_key.starts_with("__") {
            return None;
        }
        match self.namespace {
            Some(ns) => store_key
                .strip_prefix(ns)
                .and_then(|rest| rest.strip_prefix('.')),
            None => (!store_key.contains('.')).then_some(store_key),
        }
    }

    /// The store key for a key inside this schema's namespace.
    ///
    /// ```
    /// use session_runtime::SessionData;
    ///
    /// #[derive(SessionData)]
    /// #[session(namespace = "shop", version = 2, migrate = up)]
    /// struct Cart {
    ///     items: Vec<String>,
    ///     #[session(rename = "th")]
    ///     theme: String,
    ///     #[session(skip)]
    ///     scratch: u32,
    /// }
    /// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
    ///
    /// assert_eq!(Cart::SCHEMA.store_key("th"), "shop.th");
    /// ```
    pub fn store_key(&self, local_key: &str) -> String {
        match self.namespace {
            Some(ns) => format!("{ns}.{local_key}"),
            None => local_key.to_owned(),
        }
    }
}

/// One field of a [`Schema`].
#[derive(Debug)]
pub struct FieldInfo {
    name: &'static str,
    key: &'static str,
    store_key: &'static str,
    persisted: bool,
}

impl FieldInfo {
    #[doc(hidden)]
    pub const fn new(
        name: &'static str,
        key: &'static str,
        store_key: &'static str,
        persisted: bool,
    ) -> Self {
        Self {
            name,
            key,
            store_key,
            persisted,
        }
    }

    /// The Rust field name.
    ///
    /// ```
    /// use session_runtime::SessionData;
    ///
    /// #[derive(SessionData)]
    /// #[session(namespace = "shop", version = 2, migrate = up)]
    /// struct Cart {
    ///     items: Vec<String>,
    ///     #[session(rename = "th")]
    ///     theme: String,
    ///     #[session(skip)]
    ///     scratch: u32,
    /// }
    /// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
    ///
    /// assert_eq!(Cart::SCHEMA.fields()[1].name(), "theme");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The key inside the namespace (the `rename` value or the field name); empty for `skip`.
    ///
    /// ```
    /// use session_runtime::SessionData;
    ///
    /// #[derive(SessionData)]
    /// #[session(namespace = "shop", version = 2, migrate = up)]
    /// struct Cart {
    ///     items: Vec<String>,
    ///     #[session(rename = "th")]
    ///     theme: String,
    ///     #[session(skip)]
    ///     scratch: u32,
    /// }
    /// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
    ///
    /// assert_eq!(Cart::SCHEMA.fields()[1].key(), "th");
    /// ```
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The full store key, namespace included; empty for `skip` fields.
    ///
    /// ```
    /// use session_runtime::SessionData;
    ///
    /// #[derive(SessionData)]
    /// #[session(namespace = "shop", version = 2, migrate = up)]
    /// struct Cart {
    ///     items: Vec<String>,
    ///     #[session(rename = "th")]
    ///     theme: String,
    ///     #[session(skip)]
    ///     scratch: u32,
    /// }
    /// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
    ///
    /// assert_eq!(Cart::SCHEMA.fields()[1].store_key(), "shop.th");
    /// assert_eq!(Cart::SCHEMA.fields()[2].store_key(), "");
    /// ```
    pub fn store_key(&self) -> &'static str {
        self.store_key
    }

    /// False for `#[session(skip)]` fields.
    ///
    /// ```
    /// use session_runtime::SessionData;
    ///
    /// #[derive(SessionData)]
    /// #[session(namespace = "shop", version = 2, migrate = up)]
    /// struct Cart {
    ///     items: Vec<String>,
    ///     #[session(rename = "th")]
    ///     theme: String,
    ///     #[session(skip)]
    ///     scratch: u32,
    /// }
    /// # fn up(_: u32, _: &mut session_runtime::RawFields) -> Result<(), session_runtime::MigrationError> { Ok(()) }
    ///
    /// assert!(Cart::SCHEMA.fields()[0].is_persisted());
    /// assert!(!Cart::SCHEMA.fields()[2].is_persisted());
    /// ```
    pub fn is_persisted(&self) -> bool {
        self.persisted
    }
}

/// Which fields of a schema changed: set (to be written) or removed (to be deleted from the
/// store). A field is in at most one of the two; reads change nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldState {
    set: Bits,
    removed: Bits,
}

impl FieldState {
    /// No field changed.
    ///
    /// ```
    /// use session_runtime::FieldState;
    ///
    /// assert!(FieldState::new().is_clean());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks field `index` as set: the next save writes it.
    ///
    /// ```
    /// use session_runtime::FieldState;
    ///
    /// let mut state = FieldState::new();
    /// state.mark_set(0);
    /// assert!(state.is_set(0) && !state.is_removed(0));
    /// ```
    #[inline]
    pub fn mark_set(&mut self, index: usize) {
        self.set.insert(index);
        self.removed.remove(index);
    }

    /// Marks field `index` as removed: the next save deletes it from the store.
    ///
    /// ```
    /// use session_runtime::FieldState;
    ///
    /// let mut state = FieldState::new();
    /// state.mark_set(1);
    /// state.mark_removed(1); // a field is either written or deleted
    /// assert!(state.is_removed(1) && !state.is_set(1));
    /// ```
    #[inline]
    pub fn mark_removed(&mut self, index: usize) {
        self.removed.insert(index);
        self.set.remove(index);
    }

    /// Whether field `index` will be written.
    ///
    /// ```
    /// use session_runtime::FieldState;
    ///
    /// let mut state = FieldState::new();
    /// state.mark_set(70);
    /// assert!(state.is_set(70) && !state.is_set(69));
    /// ```
    pub fn is_set(&self, index: usize) -> bool {
        self.set.contains(index)
    }

    /// Whether field `index` will be removed.
    ///
    /// ```
    /// use session_runtime::FieldState;
    ///
    /// let mut state = FieldState::new();
    /// state.mark_removed(2);
    /// assert!(state.is_removed(2));
    /// ```
    pub fn is_removed(&self, index: usize) -> bool {
        self.removed.contains(index)
    }

    /// Whether field `index` changed at all.
    ///
    /// ```
    /// use session_runtime::FieldState;
    ///
    /// let mut state = FieldState::new();
    /// state.mark_removed(2);
    /// assert!(state.is_changed(2) && !state.is_changed(3));
    /// ```
    pub fn is_changed(&self, index: usize) -> bool {
        self.is_set(index) || self.is_removed(index)
    }

    /// Whether nothing changed.
    ///
    /// ```
    /// use session_runtime::FieldState;
    ///
    /// let mut state = FieldState::new();
    /// state.mark_set(0);
    /// assert!(!state.is_clean());
    /// ```
    pub fn is_clean(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }

    /// The indices of set fields, ascending.
    ///
    /// ```
    /// use session_runtime::FieldState;
    ///
    /// let mut state = FieldState::new();
    /// state.mark_set(3);
    /// state.mark_set(1);
    /// assert_eq!(state.set_fields().collect::<Vec<_>>(), [1, 3]);
    /// ```
    pub fn set_fields(&self) -> impl Iterator<Item = usize> + '_ {
        self.set.iter()
    }

    /// The indices of removed fields, ascending.
    ///
    /// ```
    /// use session_runtime::FieldState;
    ///
    /// let mut state = FieldState::new();
    /// state.mark_removed(5);
    /// assert_eq!(state.removed_fields().collect::<Vec<_>>(), [5]);
    /// ```
    pub fn removed_fields(&self) -> impl Iterator<Item = usize> + '_ {
        self.removed.iter()
    }

    /// Forgets every change (after they were saved).
    ///
    /// ```
    /// use session_runtime::FieldState;
    ///
    /// let mut state = FieldState::new();
    /// state.mark_set(0);
    /// state.clear(); // saved
    /// assert!(state.is_clean());
    /// ```
    pub fn clear(&mut self) {
        self.set = Bits::default();
        self.removed = Bits::default();
    }
}

/// A bit set that needs no allocation for the first 64 indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Bits {
    head: u64,
    tail: Vec<u64>,
}

impl Bits {
    fn insert(&mut self, index: usize) {
        if index < 64 {
            self.head |= 1 << index;
        } else {
            let word = index / 64 - 1;
            if self.tail.len() <= word {
                self.tail.resize(word + 1, 0);
            }
            self.tail[word] |= 1 << (index % 64);
        }
    }

    fn remove(&mut self, index: usize) {
        if index < 64 {
            self.head &= !(1 << index);
        } else if let Some(word) = self.tail.get_mut(index / 64 - 1) {
            *word &= !(1 << (index % 64));
        }
    }

    fn contains(&self, index: usize) -> bool {
        if index < 64 {
            self.head & (1 << index) != 0
        } else {
            self.tail
                .get(index / 64 - 1)
                .is_some_and(|word| word & (1 << (index % 64)) != 0)
        }
    }

    fn is_empty(&self) -> bool {
        self.head == 0 && self.tail.iter().all(|w| *w == 0)
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.head)
            .chain(self.tail.iter().copied())
            .enumerate()
            .flat_map(|(word_index, word)| {
                (0..64)
                    .filter(move |bit| word & (1 << bit) != 0)
                    .map(move |bit| word_index * 64 + bit)
            })
    }
}

/// Implemented for every type a session field can store: the derive encodes and decodes
/// persisted fields through it, so a type that is not `Serialize + DeserializeOwned` gets one
/// error that points at the field.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a session field",
    label = "this field's type must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    note = "derive them with `#[derive(serde::Serialize, serde::Deserialize)]`, or mark the field `#[session(skip)]` to keep it out of the store"
)]
pub trait Storable: Sized {
    /// Encodes the value with `C`.
    fn encode_with<C: Codec>(&self) -> Result<Vec<u8>, CodecError>;
    /// Decodes a value with `C`.
    fn decode_with<C: Codec>(bytes: &[u8]) -> Result<Self, CodecError>;
}

impl<T: Serialize + DeserializeOwned> Storable for T {
    #[inline]
    fn encode_with<C: Codec>(&self) -> Result<Vec<u8>, CodecError> {
        C::encode(self)
    }
    #[inline]
    fn decode_with<C: Codec>(bytes: &[u8]) -> Result<Self, CodecError> {
        C::decode(bytes)
    }
}

/// The default of a field without `#[session(default = path)]`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "session field of type `{Self}` has no default",
    label = "`{Self}` does not implement `Default`",
    note = "a field takes its default when it is absent from the store or taken: implement `Default` for `{Self}`, or name a function with `#[session(default = path::to::fn)]`"
)]
pub trait FieldDefault {
    /// The default value.
    fn field_default() -> Self;
}

impl<T: Default> FieldDefault for T {
    #[inline]
    fn field_default() -> Self {
        T::default()
    }
}

// ---- Helpers for the generated accessors (through `__private`). ----

#[doc(hidden)]
/// Decodes a field's stored bytes: generated once per field, so a field type that cannot be
/// stored is reported once, at the field.
pub type DecodeFn<F> = fn(&[u8]) -> Result<F, CodecError>;

/// Decodes field `index` of `schema` from `raw`, or gives its default when absent. A value
/// that fails to decode gives the default too, and the failure is returned.
fn decode_or_default<F>(
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<F>,
    default: impl FnOnce() -> F,
) -> (F, Option<DecodeError>) {
    let info = &schema.fields()[index];
    let Some(bytes) = raw.get(info.store_key()) else {
        return (default(), None);
    };
    match decode(bytes) {
        Ok(value) => (value, None),
        Err(source) => {
            tracing::warn!(
                schema = schema.name(),
                field = info.name(),
                key = info.store_key(),
                error = %Chain(&source),
                "session field failed to decode; using its default"
            );
            (
                default(),
                Some(DecodeError::Field {
                    schema: schema.name(),
                    field: info.name(),
                    source,
                }),
            )
        }
    }
}

#[doc(hidden)]
#[inline]
pub fn lazy_get<'a, F>(
    cell: &'a OnceLock<F>,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<F>,
    default: impl FnOnce() -> F,
) -> &'a F {
    cell.get_or_init(|| decode_or_default(raw, schema, index, decode, default).0)
}

#[doc(hidden)]
#[inline]
pub fn lazy_get_mut<'a, F>(
    cell: &'a mut OnceLock<F>,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<F>,
    default: impl FnOnce() -> F,
) -> &'a mut F {
    // A decode failure was logged by `decode_or_default`; the default stands in.
    let _ = lazy_force(cell, raw, schema, index, decode, default);
    cell.get_mut().expect("initialized by lazy_force")
}

#[doc(hidden)]
#[inline]
pub fn lazy_take<F>(
    cell: &mut OnceLock<F>,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<F>,
    default: impl FnOnce() -> F,
) -> F {
    match cell.take() {
        Some(value) => value,
        None => decode_or_default(raw, schema, index, decode, default).0,
    }
}

#[doc(hidden)]
pub fn lazy_force<F>(
    cell: &mut OnceLock<F>,
    raw: &RawRecord,
    schema: &'static Schema,
    index: usize,
    decode: DecodeFn<F>,
    default: impl FnOnce() -> F,
) -> Option<DecodeError> {
    if cell.get().is_some() {
        return None;
    }
    let (value, error) = decode_or_default(raw, schema, index, decode, default);
    *cell = OnceLock::from(value);
    error
}

#[doc(hidden)]
#[inline]
pub fn plain_get<F>(cell: &OnceLock<F>, default: impl FnOnce() -> F) -> &F {
    cell.get_or_init(default)
}

#[doc(hidden)]
#[inline]
pub fn plain_get_mut<F>(cell: &mut OnceLock<F>, default: impl FnOnce() -> F) -> &mut F {
    if cell.get().is_none() {
        *cell = OnceLock::from(default());
    }
    cell.get_mut().expect("initialized above")
}

#[doc(hidden)]
#[inline]
pub fn plain_take<F>(cell: &mut OnceLock<F>, default: impl FnOnce() -> F) -> F {
    cell.take().unwrap_or_else(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record read from a store has shared keys; a request's writes have static ones.
    /// Both must name the same entry.
    #[test]
    fn static_and_shared_keys_are_the_same_key() {
        use std::hash::BuildHasher;

        let shared = FieldKey::new("cart.items");
        let stat = FieldKey::from_static("cart.items");
        assert_eq!(shared, stat);
        let hasher = rustc_hash::FxBuildHasher;
        assert_eq!(hasher.hash_one(&shared), hasher.hash_one(&stat));
        assert_eq!(hasher.hash_one(&stat), hasher.hash_one("cart.items"));

        let mut fields = FieldMap::default();
        fields.insert(shared, Bytes::from_static(b"1"));
        fields.insert(stat.clone(), Bytes::from_static(b"2"));
        assert_eq!(fields.len(), 1);
        assert_eq!(fields.get("cart.items").map(|v| &v[..]), Some(&b"2"[..]));

        assert_eq!(FieldKey::from(String::from("a")), FieldKey::from("a"));
        assert_eq!(FieldKey::from(Arc::<str>::from("a")), FieldKey::from("a"));
        assert_eq!(
            FieldKey::from(Cow::Owned(String::from("b"))),
            FieldKey::from(Cow::Borrowed("b"))
        );
        assert!(FieldKey::from("a") < FieldKey::new("b"));
        assert_eq!(format!("{stat} {stat:?}"), "cart.items \"cart.items\"");
    }

    #[test]
    fn patches_overwrite_keys_loaded_from_a_store() {
        let mut fields = FieldMap::default();
        fields.insert(FieldKey::new("counter"), Bytes::from_static(b"1"));
        fields.insert(FieldKey::new("gone"), Bytes::from_static(b"x"));
        let mut patch = crate::store::Patch::expiry_only(std::time::SystemTime::now());
        patch
            .set
            .push((Cow::Borrowed("counter"), Bytes::from_static(b"2")));
        patch
            .set
            .push((Cow::Borrowed("new"), Bytes::from_static(b"3")));
        patch.remove.push(Cow::Borrowed("gone"));
        patch.apply_to(&mut fields);
        let mut entries: Vec<(&str, &[u8])> =
            fields.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
        entries.sort_unstable();
        assert_eq!(entries, [("counter", &b"2"[..]), ("new", &b"3"[..])]);
    }

    #[test]
    fn bits_cover_indices_past_64() {
        let mut bits = Bits::default();
        for i in [0, 5, 63, 64, 130, 199] {
            bits.insert(i);
        }
        assert_eq!(bits.iter().collect::<Vec<_>>(), [0, 5, 63, 64, 130, 199]);
        bits.remove(130);
        bits.remove(0);
        assert!(!bits.contains(130) && !bits.contains(0) && bits.contains(199));
        for i in [5, 63, 64, 199] {
            bits.remove(i);
        }
        assert!(bits.is_empty());
    }

    #[test]
    fn set_and_removed_exclude_each_other() {
        let mut state = FieldState::new();
        state.mark_removed(3);
        state.mark_set(3);
        assert!(state.is_set(3) && !state.is_removed(3));
        state.mark_removed(3);
        assert!(!state.is_set(3) && state.is_removed(3));
        state.clear();
        assert!(state.is_clean());
    }
}
