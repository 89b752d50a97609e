//! The embedded in-process store.

use std::{
    collections::{hash_map, HashMap, HashSet},
    hash::BuildHasher,
    sync::{Arc, Mutex, MutexGuard},
    time::SystemTime,
};

use arrayvec::ArrayVec;
use bytes::Bytes;
use rustc_hash::FxBuildHasher;

use super::{FieldMap, LoadKeys, Patch, Record, SessionStore, StoreError, WriteResult};
use crate::meta::INDEX_KEY_PREFIX;
use crate::record::FieldKey;
use crate::SessionId;

const SHARDS: usize = 16;
/// A shard's expired records are swept once it has taken this many writes, or as many as
/// it holds records if that is more: a sweep visits every record, so each write pays for
/// about one visit however large the shard is.
const SWEEP_EVERY: u32 = 1024;
/// New records whose values take at most this many bytes keep them in the same allocation
/// as their reference count.
const SMALL_RECORD: usize = 64;

/// An in-process store: the default for development, tests and single-instance apps.
///
/// Records live in memory, split over 16 independently locked shards (no lock is held
/// across an `.await`). Expired records are never returned and are evicted as the store is
/// used; the number of sessions is bounded ([`MemoryStore::with_max_sessions`], default
/// 100 000): when full, expired records go first, then an eighth of the store in one pass,
/// so a flood of new sessions costs amortized O(1) per create.
///
/// **Who is evicted**: sessions never used again since they were created go before
/// established ones (those a later request loaded, saved or refreshed), each closest to
/// expiry first. A flood of anonymous new sessions (a bot that never sends its cookie
/// back) thus evicts its own sessions, not logged-in users. The trade-off: while the store
/// is full, a visitor's brand-new session can be evicted before their second request; an
/// attacker who also comes back with each cookie is an established visitor, so size the
/// bound for your peak of returning visitors, and rate-limit session creation upstream.
/// Sessions do not survive a restart and are not shared between processes: use the Redis
/// store for that.
///
/// Cloning is cheap and clones share the records.
///
/// ```
/// use session_runtime::MemoryStore;
///
/// let store = MemoryStore::new().with_max_sessions(10_000);
/// # let _ = store;
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shards: Box<[Mutex<Shard>]>,
    max_per_shard: usize,
    max_session_bytes: usize,
}

impl Inner {
    /// Refuses a record of `bytes`, over the per-session limit.
    fn check_size(&self, bytes: usize) -> Result<(), StoreError> {
        if bytes > self.max_session_bytes {
            return Err(StoreError::Rejected(
                format!(
                    "the session would hold {bytes} bytes, over this MemoryStore's limit of {} \
                     (MemoryStore::with_max_session_bytes)",
                    self.max_session_bytes
                )
                .into(),
            ));
        }
        Ok(())
    }
}

/// Records by session ID. FxHash is safe here: IDs come from our CSPRNG, and a client's ID
/// reaches the store only after its signature checked out.
#[derive(Debug, Default)]
struct Shard {
    records: HashMap<SessionId, Entry, FxBuildHasher>,
    /// The session index of this shard's records: (index key, term) → IDs. Changed under
    /// the shard's lock with the records it mirrors, so it is never stale. Hashed with
    /// SipHash: terms are the app's values (user names, say), which clients may choose.
    index: HashMap<(FieldKey, Bytes), HashSet<SessionId, FxBuildHasher>>,
    writes: u32,
}

/// The index terms a record holds.
fn index_terms(fields: &FieldMap) -> impl Iterator<Item = (&FieldKey, &Bytes)> {
    fields
        .iter()
        .filter(|(key, _)| key.starts_with(INDEX_KEY_PREFIX))
}

/// Adds `id` under each of `terms`.
fn index_add<'a>(
    index: &mut HashMap<(FieldKey, Bytes), HashSet<SessionId, FxBuildHasher>>,
    id: &SessionId,
    terms: impl Iterator<Item = (&'a FieldKey, &'a Bytes)>,
) {
    for (key, term) in terms {
        index
            .entry((key.clone(), term.clone()))
            .or_default()
            .insert(id.clone());
    }
}

/// Removes `id` from under each of `terms`, and the terms left with no session.
fn index_remove<'a>(
    index: &mut HashMap<(FieldKey, Bytes), HashSet<SessionId, FxBuildHasher>>,
    id: &SessionId,
    terms: impl Iterator<Item = (&'a FieldKey, &'a Bytes)>,
) {
    for (key, term) in terms {
        if let hash_map::Entry::Occupied(mut ids) = index.entry((key.clone(), term.clone())) {
            ids.get_mut().remove(id);
            if ids.get().is_empty() {
                ids.remove();
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// Shared with the requests that loaded it; a save copies it only if one still holds it.
    fields: Arc<FieldMap>,
    expires_at: SystemTime,
    /// Used again since it was created (loaded, saved, refreshed or moved): a visitor who
    /// came back. A full store evicts the others first.
    established: bool,
    /// The record's size: its keys' and values' bytes.
    bytes: usize,
    /// The record holds index terms (so the shard's index names it).
    indexed: bool,
}

/// The bytes a record of `fields` would hold after `patch`, from its size now.
fn size_after(fields: &FieldMap, bytes: usize, patch: &Patch) -> usize {
    let stored = |key: &str| fields.get(key).map_or(0, |value| key.len() + value.len());
    let removed: usize = patch
        .remove
        .iter()
        .filter(|key| !patch.set.iter().any(|(set, _)| set == *key))
        .map(|key| stored(key))
        .sum();
    let replaced: usize = patch.set.iter().map(|(key, _)| stored(key)).sum();
    let added: usize = patch
        .set
        .iter()
        .map(|(key, value)| key.len() + value.len())
        .sum();
    (bytes + added).saturating_sub(removed + replaced)
}

impl Entry {
    fn is_live(&self, now: SystemTime) -> bool {
        self.expires_at > now
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// The default bound on the number of sessions.
    pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

    /// The default bound on one session's size: 1 MiB of keys and values.
    pub const DEFAULT_MAX_SESSION_BYTES: usize = 1024 * 1024;

    /// An empty store holding at most [`Self::DEFAULT_MAX_SESSIONS`] sessions.
    ///
    /// ```
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    ///
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate());
    /// # let _ = layer;
    /// ```
    pub fn new() -> Self {
        Self::build(Self::DEFAULT_MAX_SESSIONS, Self::DEFAULT_MAX_SESSION_BYTES)
    }

    /// Bounds the number of sessions held. The bound is kept per shard (`max / 16`, rounded
    /// up, each), so with an uneven spread a shard may evict while others have room: size it
    /// with headroom.
    ///
    /// ```
    /// use session_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::new().with_max_sessions(1_000_000);
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn with_max_sessions(self, max: usize) -> Self {
        Self::build(max, self.inner.max_session_bytes)
    }

    /// Bounds one session's size, its keys' and values' bytes (default
    /// [`Self::DEFAULT_MAX_SESSION_BYTES`]): a write that would make a session larger is
    /// refused with [`StoreError::Rejected`] (the request answers `500`, the cause is logged)
    /// and changes nothing, so one session cannot take the process's memory.
    ///
    /// ```
    /// use session_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::new().with_max_session_bytes(64 * 1024);
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn with_max_session_bytes(self, max: usize) -> Self {
        Self::build(self.inner.max_per_shard * SHARDS, max)
    }

    fn build(max: usize, max_session_bytes: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                max_per_shard: max.div_ceil(SHARDS).max(1),
                max_session_bytes,
            }),
        }
    }

    /// The number of records held, expired ones not yet evicted included.
    ///
    /// ```
    /// use session_runtime::MemoryStore;
    ///
    /// let store = MemoryStore::new();
    /// assert_eq!(store.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| lock(s).records.len())
            .sum()
    }

    /// Whether the store holds no records.
    ///
    /// ```
    /// use session_runtime::MemoryStore;
    ///
    /// assert!(MemoryStore::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, id: &SessionId) -> MutexGuard<'_, Shard> {
        lock(&self.inner.shards[shard_index(id)])
    }
}

/// The shard holding `id`. Taken from bits 32..36 of the hash: the shard's own table
/// places entries by the low bits and tags them with the top seven, so neither is
/// correlated with the shard (with the low bits, every entry of a shard would start its
/// probe in the same sixteenth of the table).
fn shard_index(id: &SessionId) -> usize {
    (FxBuildHasher.hash_one(id) >> 32) as usize % SHARDS
}

/// Locks a shard; a panic while holding the lock cannot leave a record half-written (every
/// write is a single map operation), so a poisoned lock is safe to reuse.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shard {
    /// The live record of `id`, now established; an expired one is dropped. One hash lookup.
    fn live(&mut self, id: &SessionId, now: SystemTime) -> Option<&mut Entry> {
        match self.records.entry(id.clone()) {
            hash_map::Entry::Occupied(entry) if entry.get().is_live(now) => {
                let entry = entry.into_mut();
                entry.established = true;
                Some(entry)
            }
            hash_map::Entry::Occupied(entry) => {
                let (id, entry) = entry.remove_entry();
                if entry.indexed {
                    index_remove(&mut self.index, &id, index_terms(&entry.fields));
                }
                None
            }
            hash_map::Entry::Vacant(_) => None,
        }
    }

    /// Removes the records `doomed` picks, and their index entries.
    fn remove_where(&mut self, mut doomed: impl FnMut(&Entry) -> bool) {
        let Self { records, index, .. } = self;
        records.retain(|id, entry| {
            let drop = doomed(entry);
            if drop && entry.indexed {
                index_remove(index, id, index_terms(&entry.fields));
            }
            !drop
        });
    }

    /// Removes the record of `id`, and its index entries.
    fn remove(&mut self, id: &SessionId) -> Option<Entry> {
        let entry = self.records.remove(id)?;
        if entry.indexed {
            index_remove(&mut self.index, id, index_terms(&entry.fields));
        }
        Some(entry)
    }

    /// Adds a record under `id`, and its index entries.
    fn insert(&mut self, id: SessionId, mut entry: Entry) {
        entry.indexed = index_terms(&entry.fields).next().is_some();
        if entry.indexed {
            index_add(&mut self.index, &id, index_terms(&entry.fields));
        }
        self.records.insert(id, entry);
    }

    fn note_write(&mut self, now: SystemTime) {
        self.writes = self.writes.saturating_add(1);
        let due = u32::try_from(self.records.len())
            .unwrap_or(u32::MAX)
            .max(SWEEP_EVERY);
        if self.writes >= due {
            self.writes = 0;
            self.remove_where(|e| !e.is_live(now));
        }
    }

    /// Makes room for one more record. When the shard is full, expired records go first;
    /// if that is not enough, an eighth of the shard goes in one pass, so the O(n) work
    /// happens once per `max / 8` creates, not on every one: first the sessions never used
    /// again since their creation (a flood of new visitors evicts itself, not the visitors
    /// who came back), closest to expiry first, then established ones the same way. Two
    /// passes over the shard: one drops the expired and notes when the others expire, one
    /// removes the chosen.
    fn reserve(&mut self, max: usize, now: SystemTime) {
        if self.records.len() < max {
            return;
        }
        let mut fresh = Vec::new();
        let mut established = Vec::new();
        self.remove_where(|e| {
            if !e.is_live(now) {
                return true;
            }
            if e.established {
                established.push(e.expires_at);
            } else {
                fresh.push(e.expires_at);
            }
            false
        });
        self.writes = 0; // that was a sweep
        if self.records.len() < max {
            return;
        }
        // At least an eighth, and enough to get below the bound however far over it is.
        let evict = (max / 8)
            .max(self.records.len() + 1 - max)
            .min(self.records.len());
        if fresh.len() >= evict {
            let mut cut = Cutoff::of(&mut fresh, evict);
            self.remove_where(|e| !e.established && cut.takes(e.expires_at));
        } else {
            // Every fresh record, and the established ones that expire first.
            let mut cut = Cutoff::of(&mut established, evict - fresh.len());
            self.remove_where(|e| !e.established || cut.takes(e.expires_at));
        }
    }
}

/// Which of a set of records an eviction removes, by expiry: every one that expires before
/// the `n`th-earliest expiry, and of those that expire exactly then only as many as make up
/// `n`, so that sessions sharing one expiry are not all dropped at once.
struct Cutoff {
    at: SystemTime,
    ties: usize,
}

impl Cutoff {
    /// The cutoff that takes the `n` (at least 1, at most `expiries.len()`) earliest.
    fn of(expiries: &mut [SystemTime], n: usize) -> Self {
        let (earlier, at, _) = expiries.select_nth_unstable(n - 1);
        let at = *at;
        // Only the partition's left side can hold earlier expiries.
        let before = earlier.iter().filter(|&&e| e < at).count();
        Self {
            at,
            ties: n - before,
        }
    }

    /// Whether the record expiring at `expires_at` goes (asked once per record).
    fn takes(&mut self, expires_at: SystemTime) -> bool {
        match expires_at.cmp(&self.at) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal if self.ties > 0 => {
                self.ties -= 1;
                true
            }
            _ => false,
        }
    }
}

/// A new record's fields, their values copied into one buffer: the record is then a few
/// allocations however many fields it has, instead of a buffer (and a shared header) per
/// value, which is what makes a record cheap to free when it is evicted, long after it was
/// last touched.
fn packed(patch: &Patch) -> FieldMap {
    let mut fields = FieldMap::with_capacity_and_hasher(patch.set.len(), FxBuildHasher);
    let total: usize = patch.set.iter().map(|(_, value)| value.len()).sum();
    let values = patch.set.iter().map(|(_, value)| &value[..]);
    let buffer = if total <= SMALL_RECORD {
        // The values and the buffer's reference count in one allocation.
        let mut small = ArrayVec::<u8, SMALL_RECORD>::new();
        for value in values {
            small
                .try_extend_from_slice(value)
                .expect("the values fit: counted above");
        }
        Bytes::from_owner(small)
    } else {
        let mut large = Vec::with_capacity(total);
        values.for_each(|value| large.extend_from_slice(value));
        Bytes::from(large)
    };
    let mut at = 0;
    for (key, value) in &patch.set {
        let end = at + value.len();
        fields.insert(FieldKey::from(key.clone()), buffer.slice(at..end));
        at = end;
    }
    fields
}

impl SessionStore for MemoryStore {
    async fn load(
        &self,
        id: &SessionId,
        _keys: LoadKeys<'_>,
    ) -> Result<Option<Record>, StoreError> {
        // The whole record, shared: cheaper than picking keys out of it.
        let now = SystemTime::now();
        let mut shard = self.shard(id);
        Ok(shard.live(id, now).map(|entry| Record {
            fields: Arc::clone(&entry.fields),
            expires_at: Some(entry.expires_at),
            stale: false,
            complete: true,
        }))
    }

    async fn create(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        let now = SystemTime::now();
        let mut shard = self.shard(id);
        if shard.live(id, now).is_some() {
            return Err(StoreError::Collision);
        }
        let bytes = size_after(&FieldMap::default(), 0, patch);
        self.inner.check_size(bytes)?;
        shard.reserve(self.inner.max_per_shard, now);
        let fields = packed(patch);
        shard.insert(
            id.clone(),
            Entry {
                fields: Arc::new(fields),
                expires_at: patch.expires_at,
                established: false,
                bytes,
                indexed: false,
            },
        );
        shard.note_write(now);
        Ok(None)
    }

    async fn save(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        let now = SystemTime::now();
        let mut shard = self.shard(id);
        let entry = shard.live(id, now).ok_or(StoreError::NotFound)?;
        let bytes = size_after(&entry.fields, entry.bytes, patch);
        self.inner.check_size(bytes)?;
        if patch.touches_index() {
            // Rare (a login, a logout): the record leaves the index and comes back with its
            // new terms, under the same lock.
            let mut entry = shard.remove(id).expect("checked live above");
            patch.apply_to(Arc::make_mut(&mut entry.fields));
            entry.expires_at = patch.expires_at;
            entry.bytes = bytes;
            shard.insert(id.clone(), entry);
        } else {
            patch.apply_to(Arc::make_mut(&mut entry.fields));
            entry.expires_at = patch.expires_at;
            entry.bytes = bytes;
        }
        shard.note_write(now);
        Ok(None)
    }

    async fn regenerate(&self, old: &SessionId, new: &SessionId, patch: &Patch) -> WriteResult {
        let now = SystemTime::now();
        let old_index = shard_index(old);
        let new_index = shard_index(new);
        // Lock both shards in index order so concurrent moves cannot deadlock.
        let (mut first, mut second) = match old_index.cmp(&new_index) {
            std::cmp::Ordering::Equal => (lock(&self.inner.shards[old_index]), None),
            std::cmp::Ordering::Less => (
                lock(&self.inner.shards[old_index]),
                Some(lock(&self.inner.shards[new_index])),
            ),
            std::cmp::Ordering::Greater => {
                let new_guard = lock(&self.inner.shards[new_index]);
                (lock(&self.inner.shards[old_index]), Some(new_guard))
            }
        };
        // `first` is always the old ID's shard; `second` (if any) the new ID's.
        if first.live(old, now).is_none() {
            return Err(StoreError::NotFound);
        }
        let target = second.as_deref_mut().unwrap_or(&mut first);
        if target.live(new, now).is_some() {
            return Err(StoreError::Collision);
        }
        let old_entry = first.records.get(old).expect("checked live above");
        let bytes = size_after(&old_entry.fields, old_entry.bytes, patch);
        self.inner.check_size(bytes)?;
        let mut entry = first
            .remove(old)
            .expect("checked live above under the same lock");
        patch.apply_to(Arc::make_mut(&mut entry.fields));
        entry.expires_at = patch.expires_at;
        entry.bytes = bytes;
        let target = match second.as_deref_mut() {
            // A move into another shard adds a record there: make room, as a create does.
            Some(other) => {
                other.reserve(self.inner.max_per_shard, now);
                other
            }
            None => &mut first,
        };
        target.insert(new.clone(), entry);
        target.note_write(now);
        Ok(None)
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.shard(id).remove(id);
        Ok(())
    }

    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> WriteResult {
        let now = SystemTime::now();
        let mut shard = self.shard(id);
        let entry = shard.live(id, now).ok_or(StoreError::NotFound)?;
        entry.expires_at = expires_at;
        Ok(None)
    }

    fn supports_index(&self) -> bool {
        true
    }

    async fn find_indexed(
        &self,
        index: &str,
        term: &[u8],
    ) -> Result<Vec<(SessionId, Record)>, StoreError> {
        let now = SystemTime::now();
        let wanted = (FieldKey::new(index), Bytes::copy_from_slice(term));
        let mut found = Vec::new();
        for shard in &self.inner.shards {
            let mut shard = lock(shard);
            let Some(ids) = shard.index.get(&wanted) else {
                continue;
            };
            let ids: Vec<SessionId> = ids.iter().cloned().collect();
            for id in ids {
                let Some(entry) = shard.records.get(&id) else {
                    continue;
                };
                if !entry.is_live(now) {
                    // Expired: it goes now, with its index entries.
                    shard.remove(&id);
                    continue;
                }
                if entry.fields.get(index).map(|v| &v[..]) == Some(term) {
                    let record = Record {
                        fields: Arc::clone(&entry.fields),
                        expires_at: Some(entry.expires_at),
                        stale: false,
                        complete: true,
                    };
                    found.push((id, record));
                }
            }
        }
        Ok(found)
    }

    async fn delete_indexed(
        &self,
        id: &SessionId,
        index: &str,
        term: &[u8],
    ) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        let mut shard = self.shard(id);
        let holds = shard
            .records
            .get(id)
            .is_some_and(|e| e.is_live(now) && e.fields.get(index).map(|v| &v[..]) == Some(term));
        if holds {
            shard.remove(id);
        }
        Ok(holds)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn patch_of(values: &[(&'static str, Vec<u8>)]) -> Patch {
        Patch {
            set: values
                .iter()
                .map(|(key, value)| (Cow::Borrowed(*key), Bytes::copy_from_slice(value)))
                .collect(),
            remove: Vec::new(),
            expires_at: SystemTime::now(),
        }
    }

    #[test]
    fn a_packed_record_keeps_every_value_in_one_buffer() {
        // A small record (its values held with their reference count) and a large one.
        for long in [4, SMALL_RECORD + 1] {
            let values = [
                ("counter", b"41".to_vec()),
                ("empty", Vec::new()),
                ("__created", b"1700000000000".to_vec()),
                ("name", format!("\"{}é\"", "x".repeat(long)).into_bytes()),
            ];
            let fields = packed(&patch_of(&values));
            assert_eq!(fields.len(), values.len());
            for (key, value) in &values {
                assert_eq!(fields.get(*key).map(|v| &v[..]), Some(&value[..]), "{key}");
            }
            // Every non-empty value is a slice of the same allocation, in order.
            let start = fields["counter"].as_ptr() as usize;
            assert_eq!(fields["__created"].as_ptr() as usize, start + 2);
            assert_eq!(fields["name"].as_ptr() as usize, start + 2 + 13);
        }
        assert!(packed(&Patch::expiry_only(SystemTime::now())).is_empty());
    }

    #[test]
    fn packed_values_outlive_their_record_and_each_other() {
        let values = [("a", b"1".to_vec()), ("b", b"\"two\"".to_vec())];
        let fields = packed(&patch_of(&values));
        let a = fields["a"].clone();
        let b = fields["b"].slice(1..4);
        drop(fields);
        assert_eq!(&a[..], b"1");
        drop(a);
        assert_eq!(&b[..], b"two");
    }

    /// The session index does not pile up: 10 000 sessions of one user that expire leave no
    /// entry, once a listing (or the sweep) meets them.
    #[tokio::test]
    async fn ten_thousand_expired_sessions_of_one_user_leave_the_index_empty() {
        let store = MemoryStore::new();
        let soon = SystemTime::now() + std::time::Duration::from_millis(300);
        for _ in 0..10_000 {
            let mut patch = patch_of(&[("__ix.user_id", b"42".to_vec())]);
            patch.expires_at = soon;
            store.create(&SessionId::generate(), &patch).await.unwrap();
        }
        let entries = |store: &MemoryStore| -> usize {
            store
                .inner
                .shards
                .iter()
                .map(|s| lock(s).index.values().map(HashSet::len).sum::<usize>())
                .sum()
        };
        assert_eq!(entries(&store), 10_000);
        assert_eq!(
            store
                .find_indexed("__ix.user_id", b"42")
                .await
                .unwrap()
                .len(),
            10_000
        );
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert!(store
            .find_indexed("__ix.user_id", b"42")
            .await
            .unwrap()
            .is_empty());
        assert_eq!(entries(&store), 0, "the expired sessions left the index");
        assert!(store.inner.shards.iter().all(|s| lock(s).index.is_empty()));
        assert_eq!(store.len(), 0);
    }

    /// Regression: the shard came from the low hash bits, which also pick an entry's bucket
    /// in the shard's table, so all of a shard's entries probed from one sixteenth of it.
    #[test]
    fn the_shard_is_independent_of_the_bits_that_place_entries() {
        let mut low_bits = vec![std::collections::HashSet::new(); SHARDS];
        let mut top_bits = vec![std::collections::HashSet::new(); SHARDS];
        for _ in 0..4096 {
            let id = SessionId::generate();
            let hash = FxBuildHasher.hash_one(&id);
            low_bits[shard_index(&id)].insert(hash % 16);
            top_bits[shard_index(&id)].insert(hash >> 57);
        }
        for shard in 0..SHARDS {
            assert!(
                low_bits[shard].len() > 8,
                "shard {shard}: {:?}",
                low_bits[shard]
            );
            assert!(top_bits[shard].len() > 32, "shard {shard}");
        }
    }
}
