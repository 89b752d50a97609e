//! Every attribute key and reserved name the derive knows, declared in one place.

/// The attribute namespace: `#[session(...)]`.
pub(crate) const SESSION: &str = "session";
/// serde's attributes, which the derive reads too (`#[serde(...)]`), so that none is silently
/// ignored.
pub(crate) const SERDE: &str = "serde";

// Container attributes.
pub(crate) const VERSION: &str = "version";
pub(crate) const MIGRATE: &str = "migrate";
pub(crate) const NAMESPACE: &str = "namespace";
pub(crate) const CODEC: &str = "codec";
pub(crate) const CRATE: &str = "crate";
pub(crate) const ACCESSORS: &str = "accessors";
pub(crate) const CONTAINER_KEYS: &[&str] = &[VERSION, MIGRATE, NAMESPACE, CODEC, CRATE, ACCESSORS];

// Field attributes.
pub(crate) const RENAME: &str = "rename";
pub(crate) const SKIP: &str = "skip";
pub(crate) const DEFAULT: &str = "default";
pub(crate) const INDEX: &str = "index";
pub(crate) const ENTRIES: &str = "entries";
pub(crate) const FIELD_KEYS: &[&str] = &[RENAME, SKIP, DEFAULT, INDEX, ENTRIES];
// Inside `entries(...)`.
pub(crate) const MAX: &str = "max";
pub(crate) const MAX_KEY_LEN: &str = "max_key_len";
/// The longest encoded entry key a field may allow (mirrors `session_runtime`'s
/// `entries::MAX_KEY_LEN_LIMIT`).
pub(crate) const MAX_KEY_LEN_LIMIT: u64 = 256;

/// Separates a map field's store key from its entries' keys (`items#sku-1`), so field keys
/// may not contain it (mirrors `session_runtime`'s `entries::ENTRY_SEPARATOR`).
pub(crate) const ENTRY_SEPARATOR: char = '#';

/// An indexed field's index term is stored under this prefix plus the field's store key
/// (mirrors `session_runtime`'s `meta::INDEX_KEY_PREFIX`).
pub(crate) const INDEX_KEY_PREFIX: &str = "__ix.";

/// Store keys starting with this prefix hold the runtime's own metadata (schema versions,
/// creation time, expiry override).
pub(crate) const RESERVED_KEY_PREFIX: &str = "__";

/// Separates a schema's namespace from its field keys in the store (`ns.key`).
///
/// This and `RESERVED_KEY_PREFIX` mirror `session_runtime`'s `meta.rs`; the runtime's
/// `tests/schema.rs` (`the_derive_and_the_runtime_agree_on_reserved_keys`) ties them.
pub(crate) const NAMESPACE_SEPARATOR: char = '.';

/// The prefix of the names the derive gives its own items in the generated accessor type
/// (each field's constant, the whole struct's member functions, map fields' decoders): no
/// field may generate an accessor that starts with it.
pub(crate) const GENERATED_PREFIX: &str = "__sr_";

/// Methods that `TypedSession<T>` has itself, through its own trait impls, or that every
/// type gets from a trait of the prelude or of `std` that code commonly imports. A generated accessor with one of these names would be shadowed when called on a
/// `TypedSession`, so such a field is a compile error instead.
///
/// Keep in sync with the inherent methods of `session_runtime::TypedSession` (a test in the
/// runtime checks this list against them).
pub(crate) const RESERVED_METHODS: &[&str] = &[
    // TypedSession's own methods.
    "id",
    "is_new",
    "regenerate",
    "destroy",
    "save",
    "set_idle_timeout",
    "set_session_only_cookie",
    "metadata",
    "data",
    "sessions",
    "revoke",
    "revoke_others",
    // Deref/DerefMut, through which the accessors are reached.
    "deref",
    "deref_mut",
    // Traits `TypedSession` implements itself: `Drop` (in the prelude; calling it is an
    // error that would hide the accessor) and `Debug` (once `fmt::Debug` is imported).
    "drop",
    "fmt",
    // `Clone`, which `TypedSession` implements (a new handle on the request's session).
    "clone",
    "clone_from",
    // Traits every type implements: `Into` and `TryInto` (in the prelude), and `Borrow`,
    // `BorrowMut` and `Any` (once imported). Method lookup tries `TypedSession` itself
    // before the accessors behind its `Deref`, so these would win.
    "into",
    "try_into",
    "borrow",
    "borrow_mut",
    "type_id",
];
