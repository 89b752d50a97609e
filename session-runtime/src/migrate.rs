//! Schema migrations: reshaping records stored by older versions of a schema.

use std::{collections::BTreeMap, error::Error as StdError, fmt, marker::PhantomData};

use serde::{de::DeserializeOwned, Serialize};

use crate::codec::{Codec, CodecError, JsonCodec};

/// The raw fields of one schema's record, as a migration hook sees them: key inside the
/// schema's namespace → encoded value.
///
/// The hook gets every key the record holds in the schema's namespace, including keys of
/// fields the code no longer has. Whatever it changes, inserts or removes is written back by
/// the next save; the record's version becomes the schema's current version.
///
/// ```
/// use session_runtime::{MigrationError, RawFields, SessionData};
///
/// #[derive(SessionData)]
/// #[session(version = 3, migrate = migrate_user)]
/// struct User {
///     display_name: String,
///     age_years: u32,
/// }
///
/// fn migrate_user(from: u32, fields: &mut RawFields) -> Result<(), MigrationError> {
///     if from < 2 {
///         // v1 called the field `name`.
///         fields.rename("name", "display_name");
///     }
///     if from < 3 {
///         // v2 stored the age as a string and had a `legacy` flag.
///         fields.convert("age_years", |age: String| age.parse::<u32>().unwrap_or(0))?;
///         fields.remove("legacy");
///     }
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// Values are decoded and encoded with the schema's codec `C` ([`JsonCodec`] unless the
/// schema says `#[session(codec = path)]`; the hook then takes `&mut RawFields<path>`).
pub struct RawFields<C: Codec = JsonCodec> {
    fields: BTreeMap<String, Vec<u8>>,
    codec: PhantomData<fn() -> C>,
}

impl<C: Codec> fmt::Debug for RawFields<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawFields")
            .field("codec", &std::any::type_name::<C>())
            .field("fields", &self.fields)
            .finish()
    }
}

impl<C: Codec> Clone for RawFields<C> {
    fn clone(&self) -> Self {
        Self::from_map(self.fields.clone())
    }
}

impl<C: Codec> Default for RawFields<C> {
    fn default() -> Self {
        Self::from_map(BTreeMap::new())
    }
}

impl<C: Codec> PartialEq for RawFields<C> {
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields
    }
}

impl<C: Codec> Eq for RawFields<C> {}

impl RawFields {
    /// An empty set of fields, encoded as JSON (`RawFields::<C>::default()` for another
    /// codec).
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// let mut fields = RawFields::new();
    /// fields.insert("theme", "dark")?;
    /// assert_eq!(fields.get_raw("theme"), Some(&b"\"dark\""[..]));
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
}

impl<C: Codec> RawFields<C> {
    /// Whether `key` is present.
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// # let mut fields = RawFields::new();
    /// # fields.insert("name", "Ada")?;
    /// // Version 1 kept `name`; version 2 calls it `display_name`.
    /// if fields.contains("name") {
    ///     fields.rename("name", "display_name");
    /// }
    /// assert!(fields.contains("display_name"));
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn contains(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    /// The keys present, sorted.
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// # let mut fields = RawFields::new();
    /// # fields.insert("b", &1)?;
    /// # fields.insert("a", &2)?;
    /// let keys: Vec<&str> = fields.keys().collect();
    /// assert_eq!(keys, ["a", "b"]);
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// The number of fields.
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// let mut fields = RawFields::new();
    /// fields.insert("a", &1)?;
    /// assert_eq!(fields.len(), 1);
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// assert!(RawFields::new().is_empty());
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Decodes `key` as a `T`, leaving it in place. `Ok(None)` when absent.
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// # let mut fields = RawFields::new();
    /// # fields.insert("count", &3u64)?;
    /// let count: Option<u64> = fields.get("count")?;
    /// assert_eq!(count, Some(3));
    /// assert_eq!(fields.get::<u64>("missing")?, None);
    /// // A value of another type is an error naming the key.
    /// assert!(fields.get::<String>("count").is_err());
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, MigrationError> {
        self.fields
            .get(key)
            .map(|bytes| C::decode(bytes).map_err(|e| MigrationError::decode(key, e)))
            .transpose()
    }

    /// Decodes and removes `key`. `Ok(None)` when absent; on a decode error the field stays.
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// # let mut fields = RawFields::new();
    /// # fields.insert("first", "Ada")?;
    /// # fields.insert("last", "Lovelace")?;
    /// // Two fields become one.
    /// let first: String = fields.take("first")?.unwrap_or_default();
    /// let last: String = fields.take("last")?.unwrap_or_default();
    /// fields.insert("full_name", &format!("{first} {last}"))?;
    /// assert_eq!(fields.keys().collect::<Vec<_>>(), ["full_name"]);
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn take<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, MigrationError> {
        let value = self.get(key)?;
        self.fields.remove(key);
        Ok(value)
    }

    /// Encodes `value` under `key`, replacing any previous value.
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// let mut fields = RawFields::new();
    /// fields.insert("tags", &vec!["new"])?;
    /// assert_eq!(fields.get::<Vec<String>>("tags")?, Some(vec!["new".to_owned()]));
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn insert<T: Serialize + ?Sized>(
        &mut self,
        key: impl Into<String>,
        value: &T,
    ) -> Result<(), MigrationError> {
        let key = key.into();
        let bytes = C::encode(value).map_err(|e| MigrationError::encode(&key, e))?;
        self.fields.insert(key, bytes);
        Ok(())
    }

    /// Moves the value of `from` to `to` (replacing `to`). Returns whether `from` existed.
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// # let mut fields = RawFields::new();
    /// # fields.insert("th", "dark")?;
    /// assert!(fields.rename("th", "theme"));
    /// assert!(!fields.rename("th", "theme")); // already moved
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn rename(&mut self, from: &str, to: impl Into<String>) -> bool {
        match self.fields.remove(from) {
            Some(bytes) => {
                self.fields.insert(to.into(), bytes);
                true
            }
            None => false,
        }
    }

    /// Removes `key`. Returns whether it existed.
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// # let mut fields = RawFields::new();
    /// # fields.insert("legacy_flag", &true)?;
    /// // The field is gone from the schema: the next save deletes it from the store.
    /// assert!(fields.remove("legacy_flag"));
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn remove(&mut self, key: &str) -> bool {
        self.fields.remove(key).is_some()
    }

    /// Replaces the value of `key` with `f(old)`, changing its type from `A` to `B`.
    /// Returns whether `key` existed.
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// # let mut fields = RawFields::new();
    /// # fields.insert("age", "42")?;
    /// // Version 1 stored the age as text.
    /// fields.convert("age", |text: String| text.parse::<u32>().unwrap_or(0))?;
    /// assert_eq!(fields.get::<u32>("age")?, Some(42));
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn convert<A: DeserializeOwned, B: Serialize>(
        &mut self,
        key: &str,
        f: impl FnOnce(A) -> B,
    ) -> Result<bool, MigrationError> {
        match self.get::<A>(key)? {
            Some(old) => {
                self.insert(key, &f(old))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The encoded value of `key`.
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// # let mut fields = RawFields::new();
    /// # fields.insert("count", &3)?;
    /// assert_eq!(fields.get_raw("count"), Some(&b"3"[..]));
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn get_raw(&self, key: &str) -> Option<&[u8]> {
        self.fields.get(key).map(Vec::as_slice)
    }

    /// Stores already-encoded bytes under `key`.
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// let mut fields = RawFields::new();
    /// fields.insert_raw("count", b"3".to_vec());
    /// assert_eq!(fields.get::<u64>("count")?, Some(3));
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn insert_raw(&mut self, key: impl Into<String>, bytes: Vec<u8>) {
        self.fields.insert(key.into(), bytes);
    }

    /// The entries of the `#[session(entries)]` map field `field` (its key inside the
    /// namespace), decoded into a map. An entry that does not decode is an error naming
    /// its key.
    ///
    /// A migration that turns a map field stored entry by entry back into a whole value
    /// takes its entries and inserts the map under the field's key:
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// # let mut fields = RawFields::new();
    /// # fields.insert_entries("items", &BTreeMap::from([("a".to_owned(), 1u32)]))?;
    /// let items: BTreeMap<String, u32> = fields.take_entries("items")?;
    /// fields.insert("items", &items)?;
    /// assert_eq!(fields.keys().collect::<Vec<_>>(), ["items"]);
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn entries<M>(&self, field: &str) -> Result<M, MigrationError>
    where
        M: crate::entry_map::EntryMap,
        M::Value: DeserializeOwned,
    {
        let prefix = format!("{field}{}", crate::entry_map::ENTRY_SEPARATOR);
        let mut map = M::default();
        for (key, bytes) in self.fields.range(prefix.clone()..) {
            let Some(suffix) = key.strip_prefix(&prefix) else {
                break;
            };
            let entry = crate::entry_map::key_of::<M::Key>(suffix).ok_or_else(|| {
                MigrationError::other(format!("`{key}` is not an entry key of the map's key type"))
            })?;
            let value = C::decode(bytes).map_err(|e| MigrationError::decode(key, e))?;
            map.insert_entry(entry, value);
        }
        Ok(map)
    }

    /// Takes the entries of the map field `field`: as [`entries`](Self::entries), and
    /// removes them (the next save deletes them from the store).
    pub fn take_entries<M>(&mut self, field: &str) -> Result<M, MigrationError>
    where
        M: crate::entry_map::EntryMap,
        M::Value: DeserializeOwned,
    {
        let map = self.entries(field)?;
        self.remove_entries(field);
        Ok(map)
    }

    /// Stores every entry of `map` as an entry of the `#[session(entries)]` field `field`
    /// (its key inside the namespace), the encoding the field reads.
    ///
    /// A migration that turns a whole map value into a map stored entry by entry:
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use session_runtime::{MigrationError, RawFields, SessionData};
    ///
    /// #[derive(SessionData)]
    /// #[session(version = 2, migrate = to_entries)]
    /// struct Cart {
    ///     #[session(entries)]
    ///     items: BTreeMap<String, u32>,
    /// }
    ///
    /// fn to_entries(from: u32, fields: &mut RawFields) -> Result<(), MigrationError> {
    ///     if from < 2 {
    ///         // Version 1 stored the whole map under `items`.
    ///         let items: BTreeMap<String, u32> = fields.take("items")?.unwrap_or_default();
    ///         fields.insert_entries("items", &items)?;
    ///     }
    ///     Ok(())
    /// }
    /// # let mut fields = RawFields::new();
    /// # fields.insert("items", &BTreeMap::from([("a b".to_owned(), 2u32)]))?;
    /// # to_entries(1, &mut fields)?;
    /// # assert_eq!(fields.keys().collect::<Vec<_>>(), ["items#a%20b"]);
    /// # Ok::<(), MigrationError>(())
    /// ```
    pub fn insert_entries<M>(&mut self, field: &str, map: &M) -> Result<(), MigrationError>
    where
        M: crate::entry_map::EntryMap,
        M::Value: Serialize,
    {
        for (key, value) in map.entries() {
            let store_key = format!(
                "{field}{}{}",
                crate::entry_map::ENTRY_SEPARATOR,
                crate::entry_map::encode_suffix(&crate::entry_map::EntryKey::to_entry_key(key))
            );
            self.insert(store_key, value)?;
        }
        Ok(())
    }

    /// Removes every entry of the map field `field`; how many there were.
    pub fn remove_entries(&mut self, field: &str) -> usize {
        let prefix = format!("{field}{}", crate::entry_map::ENTRY_SEPARATOR);
        let before = self.fields.len();
        self.fields.retain(|key, _| !key.starts_with(&prefix));
        before - self.fields.len()
    }

    pub(crate) fn into_map(self) -> BTreeMap<String, Vec<u8>> {
        self.fields
    }

    pub(crate) fn from_map(fields: BTreeMap<String, Vec<u8>>) -> Self {
        Self {
            fields,
            codec: PhantomData,
        }
    }
}

/// A migration hook failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum MigrationError {
    /// A stored value did not decode as the type the hook asked for.
    Decode {
        /// The key inside the schema's namespace.
        key: String,
        /// The codec's error.
        source: CodecError,
    },
    /// A value the hook inserted could not be encoded.
    Encode {
        /// The key inside the schema's namespace.
        key: String,
        /// The codec's error.
        source: CodecError,
    },
    /// The hook's own error.
    Other(Box<dyn StdError + Send + Sync>),
}

impl MigrationError {
    /// Wraps the hook's own error or message.
    ///
    /// ```
    /// use session_runtime::{MigrationError, RawFields};
    ///
    /// fn migrate(from: u32, fields: &mut RawFields) -> Result<(), MigrationError> {
    ///     if from == 0 {
    ///         return Err(MigrationError::other("records from before versioning are not supported"));
    ///     }
    ///     Ok(())
    /// }
    /// # assert!(migrate(0, &mut RawFields::new()).is_err());
    /// ```
    pub fn other(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Other(error.into())
    }

    fn decode(key: &str, source: CodecError) -> Self {
        Self::Decode {
            key: key.to_owned(),
            source,
        }
    }

    fn encode(key: &str, source: CodecError) -> Self {
        Self::Encode {
            key: key.to_owned(),
            source,
        }
    }
}

impl fmt::Display for MigrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode { key, .. } => write!(f, "migration could not decode field `{key}`"),
            Self::Encode { key, .. } => write!(f, "migration could not encode field `{key}`"),
            // The hook's own error or message, as it is (its sources are this error's).
            Self::Other(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl StdError for MigrationError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Decode { source, .. } | Self::Encode { source, .. } => Some(source),
            Self::Other(e) => e.source(),
        }
    }
}
