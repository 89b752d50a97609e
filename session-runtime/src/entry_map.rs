//! Map fields stored entry by entry (`#[session(entries)]`): the map and key types, and how
//! an entry's key becomes a store-key suffix. The accessors' side is in `entries`.
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
    fmt::Write as _,
    hash::{BuildHasher, Hash},
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
    /// Every entry, by value.
    fn into_entries(self) -> Box<dyn Iterator<Item = (Self::Key, Self::Value)>>;
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
    fn into_entries(self) -> Box<dyn Iterator<Item = (K, V)>> {
        Box::new(self.into_iter())
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
    fn into_entries(self) -> Box<dyn Iterator<Item = (K, V)>> {
        Box::new(self.into_iter())
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
pub(crate) fn suffix_of<K: EntryKey>(key: &K) -> String {
    encode_suffix(&key.to_entry_key())
}

/// The key a stored suffix names, if it names one (canonically).
pub(crate) fn key_of<K: EntryKey>(suffix: &str) -> Option<K> {
    let text = decode_suffix(suffix)?;
    let key = K::from_entry_key(&text)?;
    (key.to_entry_key() == text).then_some(key)
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
