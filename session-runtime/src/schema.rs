//! The contract between `#[derive(SessionData)]` and the runtime: the traits a schema
//! implements and the static description the derive generates.

use crate::{
    changes::FieldState,
    codec::Codec,
    error::DecodeError,
    meta::{NAMESPACE_SEPARATOR, RESERVED_KEY_PREFIX},
    migrate::RawFields,
    record::RawRecord,
    CodecError, MigrationError,
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
/// - `accessors = "Name"`: names the generated accessor type and puts it next to the
///   struct (with the struct's visibility), so that its methods show in the crate's docs
///   and other code can name it. Without it the type is out of reach. The accessors of an
///   example schema are documented at `session_runtime::example::CartAccessors`.
///
/// On a field:
/// - `rename = "k"`: the store key (default: the field's name).
/// - `skip`: never stored; the field holds its default on every load.
/// - `default = path`: a `fn() -> F` giving the value when the field is absent from the store
///   (default: `F::default()`; `default` alone says so too). Every field needs a default:
///   `Default` or this attribute. The default is not stored: it is computed again on every
///   load until something writes the field, so a default that changes (`default = now`)
///   changes between requests. To keep the first value, store it when it is first needed:
///   make the field an `Option` and `if s.first_seen().is_none() { s.set_first_seen(Some(now())) }`.
///
/// - `entries`, or `entries(max = N, max_key_len = N)`, on a `BTreeMap<K, V>` or
///   `HashMap<K, V>` field: the map is stored entry by entry, each entry under its own store
///   key, so concurrent requests that change different entries all keep their change. Its
///   accessors differ: `f()` reads the map, `f_mut()` returns an
///   [`EntriesMut`](crate::EntriesMut) that changes single entries (and marks only those),
///   `set_f(map)` replaces the whole map (`Result`, for the bounds) and `take_f()` empties
///   it. See [`EntryKey`](crate::EntryKey) for the key types and the encoding.
///
/// Store keys may not be empty, contain `.` or `#`, or start with `__` (the runtime's own
/// metadata).
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
///
/// # Generic schemas
///
/// A schema may be generic over types (a login crate's user ID, say): its store keys never
/// depend on the parameters, and the derive asks of them what the fields need (stored,
/// thread-safe, a default) where the schema is used. Every instance shares the schema's
/// keys and version key, so an app uses one instance per namespace: a second one
/// (`Login<String>` next to `Login<u64>`) is refused with
/// [`SessionError::SchemaConflict`](crate::SessionError::SchemaConflict). Lifetime
/// parameters are not supported (fields are decoded into owned values).
///
/// ```
/// use serde::{de::DeserializeOwned, Serialize};
/// use session_runtime::{SessionData, TypedSession};
///
/// #[derive(SessionData)]
/// #[session(namespace = "login")]
/// pub struct Login<Id> {
///     pub user: Option<Id>,
/// }
///
/// async fn login<Id>(mut session: TypedSession<Login<Id>>, id: Id)
/// where
///     Id: Serialize + DeserializeOwned + Send + Sync + 'static,
/// {
///     session.set_user(Some(id));
///     session.regenerate();
/// }
/// # fn main() {}
/// ```
///
/// # Threads
///
/// A request's extractors share the session across threads, so every field must be `Send`
/// and `Sync`: the derive checks each field at its type (one error there, instead of errors
/// about the whole struct). The trait itself does not require it, so generic code that moves
/// a [`TypedSession<T>`](crate::TypedSession) across threads says so:
/// `where T::Fields: Send + Sync`.
pub trait SessionData: Sized + 'static {
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
pub trait SchemaFields: Sized + 'static {
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
    fn decode_all(&mut self) -> Vec<DecodeError>;

    /// The whole struct, decoding every field not decoded yet (once).
    fn data(&mut self) -> &Self::Data;

    /// The whole struct, by value.
    fn into_data(self) -> Self::Data;

    /// For a `#[session(entries)]` field at `index`: appends the store writes of its
    /// changed entries (and its clear) to `out`, and forgets them.
    fn entry_writes<C: Codec>(
        &mut self,
        index: usize,
        out: &mut Vec<crate::record::FieldWrite>,
    ) -> Result<(), CodecError> {
        let _ = out;
        Err(CodecError::not_persisted(index))
    }

    /// The index term of the `#[session(index)]` field at `index` as it stands (decoding
    /// it first if needed): `None` when the field is not indexed, or holds a value that
    /// indexes nothing (`None`, or its default).
    fn index_term(&self, index: usize) -> Option<String> {
        let _ = index;
        None
    }
}

/// Static description of a schema, generated by the derive.
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
/// let schema = Cart::SCHEMA;
/// assert_eq!(schema.name(), "Cart");
/// assert_eq!(schema.version(), 2);
/// assert_eq!(schema.namespace(), Some("shop"));
/// assert_eq!(schema.version_key(), "__v.shop");
///
/// let keys = schema.load_keys();
/// assert!(keys.contains(&"shop.items") && keys.contains(&"shop.th") && keys.contains(&"__v.shop"));
/// assert!(schema.owns_key("shop.items") && schema.owns_key("shop.removed_long_ago"));
/// assert!(!schema.owns_key("auth.user"));
/// assert_eq!(schema.local_key("shop.th"), Some("th"));
/// assert_eq!(schema.local_key("auth.user"), None);
/// assert_eq!(schema.store_key("th"), "shop.th");
/// ```
#[derive(Debug)]
pub struct Schema {
    name: &'static str,
    version: u32,
    namespace: Option<&'static str>,
    version_key: &'static str,
    fields: &'static [FieldInfo],
    load_keys: &'static [&'static str],
    indexed: bool,
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
        let mut indexed = false;
        let mut at = 0;
        while at < fields.len() {
            indexed |= !fields[at].index_key.is_empty();
            at += 1;
        }
        Self {
            name,
            version,
            namespace,
            version_key,
            fields,
            load_keys,
            indexed,
        }
    }

    /// Whether any field is `#[session(index)]`: the schema then needs a store that
    /// indexes ([`SessionStore::supports_index`](crate::SessionStore::supports_index)).
    pub fn is_indexed(&self) -> bool {
        self.indexed
    }

    /// The struct's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The version the code declares (`#[session(version = N)]`, default 1).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The namespace, if any (`#[session(namespace = "x")]`).
    pub fn namespace(&self) -> Option<&'static str> {
        self.namespace
    }

    /// The store key holding this schema's stored version: `__v.<namespace>`, or
    /// `__v.<StructName>` without a namespace.
    pub fn version_key(&self) -> &'static str {
        self.version_key
    }

    /// Every field, in declaration order; a field's index is its position here.
    #[doc(hidden)]
    pub fn fields(&self) -> &'static [FieldInfo] {
        self.fields
    }

    /// The store keys a load of this schema asks for: its stored fields, its version, and
    /// the session's metadata.
    pub fn load_keys(&self) -> &'static [&'static str] {
        self.load_keys
    }

    /// Whether a store key belongs to this schema's namespace (including keys of fields the
    /// schema no longer has). Metadata keys (`__...`) never do.
    pub fn owns_key(&self, store_key: &str) -> bool {
        self.local_key(store_key).is_some()
    }

    /// The key inside the namespace for a store key of this schema's namespace.
    pub fn local_key<'k>(&self, store_key: &'k str) -> Option<&'k str> {
        if store_key.starts_with(RESERVED_KEY_PREFIX) {
            return None;
        }
        match self.namespace {
            Some(ns) => store_key
                .strip_prefix(ns)
                .and_then(|rest| rest.strip_prefix(NAMESPACE_SEPARATOR)),
            None => (!store_key.contains(NAMESPACE_SEPARATOR)).then_some(store_key),
        }
    }

    /// The store key for a key inside this schema's namespace.
    pub fn store_key(&self, local_key: &str) -> String {
        match self.namespace {
            Some(ns) => format!("{ns}{NAMESPACE_SEPARATOR}{local_key}"),
            None => local_key.to_owned(),
        }
    }
}

/// One field of a [`Schema`], as the derive describes it.
#[derive(Debug)]
pub struct FieldInfo {
    name: &'static str,
    key: &'static str,
    store_key: &'static str,
    persisted: bool,
    index_key: &'static str,
    /// For a `#[session(entries)]` field: its entries' store-key prefix and bounds.
    entries: Option<EntryBounds>,
}

/// Where a map field's entries live in the store and how many it may hold.
#[derive(Debug, Clone, Copy)]
struct EntryBounds {
    prefix: &'static str,
    max_entries: usize,
    max_key_len: usize,
}

impl FieldInfo {
    #[doc(hidden)]
    pub const fn new(
        name: &'static str,
        key: &'static str,
        store_key: &'static str,
        persisted: bool,
        index_key: &'static str,
    ) -> Self {
        Self {
            name,
            key,
            store_key,
            persisted,
            index_key,
            entries: None,
        }
    }

    /// This field stored entry by entry (`#[session(entries)]`): its entries' store keys
    /// start with `prefix` (its store key and `#`).
    #[doc(hidden)]
    pub const fn with_entries(
        mut self,
        prefix: &'static str,
        max_entries: usize,
        max_key_len: usize,
    ) -> Self {
        self.entries = Some(EntryBounds {
            prefix,
            max_entries,
            max_key_len,
        });
        self
    }

    /// For a `#[session(entries)]` map field, the prefix of its entries' store keys (its
    /// store key and `#`); `None` for other fields.
    pub fn entry_prefix(&self) -> Option<&'static str> {
        self.entries.map(|e| e.prefix)
    }

    /// The most entries a `#[session(entries)]` field holds (0 for other fields).
    pub fn max_entries(&self) -> usize {
        self.entries.map_or(0, |e| e.max_entries)
    }

    /// The longest encoded entry key of a `#[session(entries)]` field (0 for others).
    pub fn max_key_len(&self) -> usize {
        self.entries.map_or(0, |e| e.max_key_len)
    }

    /// For a `#[session(index)]` field, the store key holding its index term
    /// (`__ix.` and the field's store key); empty for other fields.
    pub fn index_key(&self) -> &'static str {
        self.index_key
    }

    /// The Rust field name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The key inside the namespace (the `rename` value or the field name); empty for `skip`.
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The full store key, namespace included; empty for `skip` fields.
    pub fn store_key(&self) -> &'static str {
        self.store_key
    }

    /// False for `#[session(skip)]` fields.
    pub fn is_persisted(&self) -> bool {
        self.persisted
    }
}
