//! A record's fields as stores hold them: store keys, the field map, and the read-only view
//! schemas decode from.

use std::{
    borrow::{Borrow, Cow},
    collections::{BTreeMap, HashMap},
    fmt,
    hash::{Hash, Hasher},
    ops::Deref,
    sync::Arc,
};

use bytes::Bytes;

/// A store write: `Some(bytes)` sets the key, `None` removes it.
pub type FieldWrite = (Cow<'static, str>, Option<Bytes>);

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
/// use session_runtime::store::{FieldKey, FieldMap};
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
    /// use session_runtime::store::FieldKey;
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
    /// use session_runtime::store::FieldKey;
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
    /// use session_runtime::store::FieldKey;
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
    /// Opens the base's sealed values, when the layer encrypts at rest (the overlay holds
    /// plaintext: this request's writes).
    #[cfg(feature = "encryption")]
    opener: Option<Arc<crate::seal::Opener>>,
}

/// A stored value's plaintext, or that it does not open.
pub(crate) type Opened<'a> = Result<Cow<'a, [u8]>, Unopened>;

/// A stored value that does not open under its session's data key.
#[derive(Debug)]
pub(crate) struct Unopened;

impl RawRecord {
    /// A view of `fields`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use session_runtime::{__private::RawRecord, store::FieldMap};
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
            #[cfg(feature = "encryption")]
            opener: None,
        }
    }

    pub(crate) fn from_parts(
        base: Option<Arc<FieldMap>>,
        overlay: Option<Arc<BTreeMap<Cow<'static, str>, Option<Bytes>>>>,
    ) -> Self {
        Self {
            base,
            overlay,
            #[cfg(feature = "encryption")]
            opener: None,
        }
    }

    /// This view with its stored values sealed, opened by `opener` as they are read.
    #[cfg(feature = "encryption")]
    pub(crate) fn sealed(mut self, opener: Option<Arc<crate::seal::Opener>>) -> Self {
        self.opener = opener;
        self
    }

    /// The plaintext of a store key's value: as [`get`](Self::get), the value opened when
    /// the record's values are sealed (encryption at rest). `Err` when it does not open.
    pub(crate) fn value(&self, key: &str) -> Result<Option<Cow<'_, [u8]>>, Unopened> {
        if let Some(value) = self.overlay.as_ref().and_then(|o| o.get(key)) {
            return Ok(value.as_deref().map(Cow::Borrowed));
        }
        if self.cleared(key) {
            return Ok(None);
        }
        let Some(stored) = self.base.as_ref().and_then(|b| b.get(key)) else {
            return Ok(None);
        };
        self.open(key, stored).map(Some)
    }

    /// Whether an unsaved clear of a map field removed this stored entry key.
    fn cleared(&self, key: &str) -> bool {
        let Some(overlay) = &self.overlay else {
            return false;
        };
        key.find(crate::entry_map::ENTRY_SEPARATOR)
            .is_some_and(|at| overlay.get(&key[..=at]).is_some_and(Option::is_none))
    }

    /// A stored value, opened when the record's values are sealed.
    #[allow(clippy::unnecessary_wraps, clippy::unused_self)]
    fn open<'a>(&self, key: &str, stored: &'a Bytes) -> Result<Cow<'a, [u8]>, Unopened> {
        #[cfg(feature = "encryption")]
        if let Some(opener) = &self.opener {
            return match opener.open(key, stored) {
                Ok(Some(plaintext)) => Ok(Cow::Owned(plaintext)),
                Ok(None) => Ok(Cow::Borrowed(&stored[..])),
                Err(()) => Err(Unopened),
            };
        }
        let _ = key;
        Ok(Cow::Borrowed(&stored[..]))
    }

    /// The encoded value of a store key.
    ///
    /// ```
    /// use session_runtime::__private::RawRecord;
    ///
    /// let record: RawRecord = [("count", "3")].into_iter().collect();
    /// assert_eq!(record.get("count"), Some(&b"3"[..]));
    /// assert_eq!(record.get("missing"), None);
    /// ```
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        if let Some(value) = self.overlay.as_ref().and_then(|o| o.get(key)) {
            return value.as_deref();
        }
        if self.cleared(key) {
            return None;
        }
        self.base.as_ref()?.get(key).map(|v| &v[..])
    }

    /// Every key under `prefix` (a map field's entries), as the suffix after it and what
    /// `stored` or `written` makes of its value, the unsaved writes applied (a clear of the
    /// prefix hides the stored ones), in suffix order.
    fn under<'a, T>(
        &'a self,
        prefix: &str,
        stored: impl Fn(&'a FieldKey, &'a Bytes) -> T,
        written: impl Fn(&'a Bytes) -> T,
    ) -> Vec<(&'a str, T)> {
        let mut found: BTreeMap<&'a str, Option<T>> = BTreeMap::new();
        let cleared = self
            .overlay
            .as_ref()
            .is_some_and(|o| o.get(prefix).is_some_and(Option::is_none));
        if let (Some(base), false) = (&self.base, cleared) {
            for (key, value) in base.iter() {
                if let Some(suffix) = key.as_str().strip_prefix(prefix) {
                    found.insert(suffix, Some(stored(key, value)));
                }
            }
        }
        if let Some(overlay) = &self.overlay {
            let after = overlay.range::<str, _>((
                std::ops::Bound::Excluded(prefix),
                std::ops::Bound::Unbounded,
            ));
            for (key, value) in after {
                let Some(suffix) = key.strip_prefix(prefix) else {
                    break;
                };
                found.insert(suffix, value.as_ref().map(&written));
            }
        }
        found
            .into_iter()
            .filter_map(|(suffix, value)| Some((suffix, value?)))
            .collect()
    }

    /// The suffixes of a map field's entries (every key under `prefix`), the unsaved writes
    /// applied, without reading any value.
    pub(crate) fn entry_suffixes<'a>(&'a self, prefix: &str) -> Vec<&'a str> {
        self.under(prefix, |_, _| (), |_| ())
            .into_iter()
            .map(|(suffix, ())| suffix)
            .collect()
    }

    /// The entries of a `#[session(entries)]` map field: every key under `prefix` (the
    /// field's store key and `#`), as the suffix after it and the value (opened), the
    /// unsaved writes applied, in suffix order.
    pub(crate) fn entries<'a>(&'a self, prefix: &str) -> Vec<(&'a str, Opened<'a>)> {
        self.under(
            prefix,
            |key, stored| self.open(key, stored),
            |written| Ok(Cow::Borrowed(&written[..])),
        )
    }

    /// Every key and value, the unsaved writes applied (sealed values opened).
    ///
    /// ```
    /// use session_runtime::__private::RawRecord;
    ///
    /// let record: RawRecord = [("a", "1"), ("b", "2")].into_iter().collect();
    /// assert_eq!(record.to_map().len(), 2);
    /// ```
    pub fn to_map(&self) -> FieldMap {
        let mut map = self.base.as_deref().cloned().unwrap_or_default();
        // Sealed values opened; one that does not open becomes empty (no field decodes it).
        #[cfg(feature = "encryption")]
        if let Some(opener) = &self.opener {
            for (key, value) in map.iter_mut() {
                match opener.open(key, value) {
                    Ok(Some(plaintext)) => *value = Bytes::from(plaintext),
                    Ok(None) => {}
                    Err(()) => *value = Bytes::new(),
                }
            }
        }
        if let Some(overlay) = &self.overlay {
            // A clear of a map field (its entry prefix, removed) sorts before its entries.
            for (key, value) in overlay.iter() {
                match value {
                    Some(v) => {
                        map.insert(FieldKey::from(key.clone()), v.clone());
                    }
                    None if key.ends_with(crate::entry_map::ENTRY_SEPARATOR) => {
                        map.retain(|stored, _| !stored.starts_with(key.as_ref()));
                    }
                    None => {
                        map.remove(key.as_ref());
                    }
                }
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
}
