//! Which fields of a schema a request changed: the per-field dirty bits.

/// Which fields of a schema changed: set (to be written) or removed (to be deleted from the
/// store). A field is in at most one of the two; reads change nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldState {
    set: Bits,
    removed: Bits,
    /// Set wholesale (`set_f`) or removed (`take_f`): the change does not depend on what the
    /// field held.
    replaced: Bits,
}

impl FieldState {
    /// No field changed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks field `index` as set: the next save writes it.
    #[inline]
    pub fn mark_set(&mut self, index: usize) {
        self.set.insert(index);
        self.removed.remove(index);
    }

    /// Marks field `index` as set to a value that does not depend on what it held (`set_f`):
    /// the next save writes it even if another handle of the request changed it meanwhile.
    #[inline]
    pub fn mark_replaced(&mut self, index: usize) {
        self.mark_set(index);
        self.replaced.insert(index);
    }

    /// Marks field `index` as removed: the next save deletes it from the store. A removal
    /// does not depend on what the field held, as a wholesale set does not.
    #[inline]
    pub fn mark_removed(&mut self, index: usize) {
        self.removed.insert(index);
        self.set.remove(index);
        self.replaced.insert(index);
    }

    /// Whether field `index` was last set wholesale or removed: its change does not depend
    /// on what it held.
    pub fn is_replaced(&self, index: usize) -> bool {
        self.replaced.contains(index)
    }

    /// Forgets the change of field `index`.
    pub fn forget(&mut self, index: usize) {
        self.set.remove(index);
        self.removed.remove(index);
        self.replaced.remove(index);
    }

    /// Whether field `index` will be written.
    pub fn is_set(&self, index: usize) -> bool {
        self.set.contains(index)
    }

    /// Whether field `index` will be removed.
    pub fn is_removed(&self, index: usize) -> bool {
        self.removed.contains(index)
    }

    /// Whether field `index` changed at all.
    pub fn is_changed(&self, index: usize) -> bool {
        self.is_set(index) || self.is_removed(index)
    }

    /// Whether nothing changed.
    pub fn is_clean(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }

    /// The indices of set fields, ascending.
    pub fn set_fields(&self) -> impl Iterator<Item = usize> + '_ {
        self.set.iter()
    }

    /// The indices of removed fields, ascending.
    pub fn removed_fields(&self) -> impl Iterator<Item = usize> + '_ {
        self.removed.iter()
    }

    /// Forgets every change (after they were saved).
    pub fn clear(&mut self) {
        self.set = Bits::default();
        self.removed = Bits::default();
        self.replaced = Bits::default();
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The assertions of the type's former doc examples.
    #[test]
    fn changes_are_reported_by_index() {
        let mut state = FieldState::new();
        assert!(state.is_clean());
        state.mark_set(0);
        assert!(state.is_set(0) && !state.is_removed(0) && !state.is_clean());
        state.mark_set(1);
        state.mark_removed(1);
        assert!(state.is_removed(1) && !state.is_set(1));
        state.mark_set(70);
        assert!(state.is_set(70) && !state.is_set(69));
        state.mark_removed(2);
        assert!(state.is_changed(2) && !state.is_changed(3));
        state.mark_set(3);
        assert_eq!(state.set_fields().collect::<Vec<_>>(), [0, 3, 70]);
        state.mark_removed(5);
        assert_eq!(state.removed_fields().collect::<Vec<_>>(), [1, 2, 5]);
        state.clear();
        assert!(state.is_clean());
    }
}
