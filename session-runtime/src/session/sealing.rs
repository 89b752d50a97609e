//! Encryption at rest in a request: the data key a load finds (values are opened as
//! schemas read them, see `RawRecord::value`), and sealing what a write sends. Without the
//! `encryption` feature (or with it off) writes pass through.

use std::borrow::Cow;

use bytes::Bytes;

use super::{Loaded, RequestSession, Snapshot};
use crate::{record::FieldMap, store::Patch, SessionId};

#[cfg(feature = "encryption")]
use crate::{meta::DATA_KEY_KEY, seal::Sealer};

#[cfg(feature = "encryption")]
impl RequestSession {
    fn sealer(&self) -> Option<&Sealer> {
        self.shared().sealer.as_deref()
    }

    /// Finds the data key of the record first loaded for `id` (from its `fields`) and
    /// keeps it in `loaded`. Returns the data key sealed under the current key when the
    /// record must store it again (it had none, or one sealed under a previous key).
    pub(super) fn found_data_key(
        &self,
        loaded: &mut Loaded,
        id: &SessionId,
        fields: &FieldMap,
    ) -> Option<Bytes> {
        let sealer = self.sealer()?;
        let opened = sealer.data_key(id, fields.get(DATA_KEY_KEY).map(|v| &v[..]));
        loaded.opener = Some(sealer.opener(&opened.key));
        opened.rewrap
    }

    /// Gives a session about to be saved a data key, if it has none yet (a new session).
    pub(super) fn ensure_data_key(&self, loaded: &mut Loaded) {
        if let Some(sealer) = self.sealer() {
            if loaded.opener.is_none() {
                loaded.opener = Some(sealer.opener(&sealer.new_key()));
            }
        }
    }

    /// Adds a new session's data key to its first write.
    pub(super) fn store_data_key(&self, snapshot: &Snapshot, patch: &mut Patch) {
        if let (Some(sealer), Some(opener)) = (self.sealer(), &snapshot.opener) {
            patch
                .set
                .push((Cow::Borrowed(DATA_KEY_KEY), sealer.wrap_key(opener.key())));
        }
    }

    /// `patch` as the store must receive it: its values sealed.
    pub(super) fn for_store<'p>(&self, snapshot: &Snapshot, patch: &'p Patch) -> Cow<'p, Patch> {
        match (self.sealer(), &snapshot.opener) {
            (Some(sealer), Some(opener)) => Cow::Owned(seal_patch(sealer, opener.key(), patch)),
            _ => Cow::Borrowed(patch),
        }
    }
}

/// `patch` with every value it sets sealed under `key`.
#[cfg(feature = "encryption")]
pub(crate) fn seal_patch(sealer: &Sealer, key: &crate::seal::DataKey, patch: &Patch) -> Patch {
    Patch {
        set: patch
            .set
            .iter()
            .map(|(name, value)| (name.clone(), sealer.seal_value(key, name, value)))
            .collect(),
        remove: patch.remove.clone(),
        expires_at: patch.expires_at,
    }
}

#[cfg(not(feature = "encryption"))]
impl RequestSession {
    pub(super) fn found_data_key(
        &self,
        _: &mut Loaded,
        _: &SessionId,
        _: &FieldMap,
    ) -> Option<Bytes> {
        None
    }

    pub(super) fn ensure_data_key(&self, _: &mut Loaded) {}

    pub(super) fn store_data_key(&self, _: &Snapshot, _: &mut Patch) {}

    pub(super) fn for_store<'p>(&self, _: &Snapshot, patch: &'p Patch) -> Cow<'p, Patch> {
        Cow::Borrowed(patch)
    }
}
