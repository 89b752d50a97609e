//! Which sessions this store has just loaded and found without index terms: the log
//! layout saves those with plain commands, which cannot keep the session index (the
//! index's scores follow every write's expiry), and every other session with a script.
//!
//! A fixed table of slots, each holding a hash of a session ID and when its load was; a
//! save consults it without locking. A slot that another load took over, a load too long
//! ago ([`FRESH_FOR`]), or a session that a write gave terms since, make the save take the
//! script, so what the table gets wrong only costs a script. The one thing it cannot see is
//! a concurrent request of the same visitor, on another app instance, setting a term between
//! this store's load and its save: the session's scores in the index then lag that save by
//! the time between the two writes (the same race as two concurrent writes to one field).

use std::{
    hash::{BuildHasher, RandomState},
    sync::atomic::{AtomicU64, Ordering},
    time::SystemTime,
};

use crate::{meta::to_millis, SessionId};

/// How many sessions the table remembers at once.
const SLOTS: usize = 4096;
/// The low bits of a slot: when the load was, in units of [`TICK_MILLIS`].
const TIME_BITS: u32 = 16;
/// A load is remembered for at least one and at most two ticks.
const TICK_MILLIS: u64 = 1024;
/// How many ticks old a load may be.
const FRESH_FOR: u64 = 1;

/// See the module's docs.
pub(super) struct TermFree {
    slots: Box<[AtomicU64]>,
    hasher: RandomState,
}

impl Default for TermFree {
    fn default() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
        }
    }
}

fn tick() -> u64 {
    to_millis(SystemTime::now()) / TICK_MILLIS
}

impl TermFree {
    /// The slot of `id` and the tag it holds there (never 0, an empty slot).
    fn place(&self, id: &SessionId) -> (&AtomicU64, u64) {
        let hash = self.hasher.hash_one(id.as_str());
        // Truncation intended: the slot index is below SLOTS.
        #[allow(clippy::cast_possible_truncation)]
        let slot = &self.slots[(hash as usize) % SLOTS];
        (slot, (hash | (1 << 63)) & !((1 << TIME_BITS) - 1))
    }

    /// After a load: whether the session holds index terms.
    pub(super) fn loaded(&self, id: &SessionId, has_terms: bool) {
        if has_terms {
            self.forget(id);
        } else {
            let (slot, tag) = self.place(id);
            slot.store(tag | (tick() & ((1 << TIME_BITS) - 1)), Ordering::Relaxed);
        }
    }

    /// After a write that may have given the session terms, or moved it.
    pub(super) fn forget(&self, id: &SessionId) {
        let (slot, tag) = self.place(id);
        let held = slot.load(Ordering::Relaxed);
        if held & !((1 << TIME_BITS) - 1) == tag {
            // Lost to another session's load in between: that one stays.
            let _ = slot.compare_exchange(held, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Whether this store loaded the session moments ago and found no index terms.
    pub(super) fn is_term_free(&self, id: &SessionId) -> bool {
        let (slot, tag) = self.place(id);
        let held = slot.load(Ordering::Relaxed);
        let mask = (1 << TIME_BITS) - 1;
        held & !mask == tag && (tick() & mask).wrapping_sub(held & mask) & mask <= FRESH_FOR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fresh_term_free_load_counts() {
        let table = TermFree::default();
        let (a, b) = (SessionId::generate(), SessionId::generate());
        assert!(!table.is_term_free(&a), "never loaded");
        table.loaded(&a, false);
        assert!(table.is_term_free(&a));
        assert!(!table.is_term_free(&b));
        table.forget(&a);
        assert!(!table.is_term_free(&a), "a write gave it terms");
        table.loaded(&a, false);
        table.loaded(&a, true);
        assert!(!table.is_term_free(&a), "loaded with terms");
        // A stale load: its tick rewound past the bound.
        table.loaded(&b, false);
        let (slot, _) = table.place(&b);
        let mask = (1 << TIME_BITS) - 1;
        let held = slot.load(Ordering::Relaxed);
        let old = (held & mask).wrapping_sub(FRESH_FOR + 1) & mask;
        slot.store((held & !mask) | old, Ordering::Relaxed);
        assert!(!table.is_term_free(&b), "too long ago");
    }

    #[test]
    fn a_slot_taken_by_another_session_answers_no() {
        let table = TermFree::default();
        let ids: Vec<SessionId> = (0..SLOTS * 4).map(|_| SessionId::generate()).collect();
        for id in &ids {
            table.loaded(id, false);
        }
        let remembered = ids.iter().filter(|id| table.is_term_free(id)).count();
        assert!(
            remembered <= SLOTS,
            "{remembered} remembered in {SLOTS} slots"
        );
        assert!(remembered > SLOTS / 2, "most slots hold a recent load");
    }
}
