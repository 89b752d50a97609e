//! Encryption at rest in a request: opening what a load returns, sealing what a write
//! sends. Without the `encryption` feature (or with it off) both pass values through.

use std::{borrow::Cow, sync::Arc};

use bytes::Bytes;

use super::{Loaded, RequestSession, Snapshot};
use crate::{record::FieldMap, store::Patch, SessionError, SessionId};

#[cfg(feature = "encryption")]
use crate::{meta::DATA_KEY_KEY, seal::Sealer, DecodePolicy};

#[cfg(feature = "encryption")]
impl RequestSession {
    fn sealer(&self) -> Option<&Sealer> {
        self.shared().sealer.as_deref()
    }

    /// The fields of the record first loaded for `id`, opened; remembers the session's
    /// data key in `loaded`. Also the data key sealed under the current key, when the
    /// record must store it again (it had none, or one sealed under a previous key).
    pub(super) fn open_loaded(
        &self,
        loaded: &mut Loaded,
        id: &SessionId,
        fields: Arc<FieldMap>,
    ) -> Result<(Arc<FieldMap>, Option<Bytes>), SessionError> {
        let Some(sealer) = self.sealer() else {
            return Ok((fields, None));
        };
        let opened = sealer.data_key(id, fields.get(DATA_KEY_KEY).map(|v| &v[..]));
        let fields = self.open_with(sealer, &opened.key, &fields)?;
        loaded.data_key = Some(opened.key);
        Ok((fields, opened.rewrap))
    }

    /// More fields of the loaded session (another schema's, or the whole record), opened.
    pub(super) fn open_more(
        &self,
        loaded: &Loaded,
        fields: Arc<FieldMap>,
    ) -> Result<Arc<FieldMap>, SessionError> {
        match (self.sealer(), &loaded.data_key) {
            (Some(sealer), Some(key)) => self.open_with(sealer, key, &fields),
            _ => Ok(fields),
        }
    }

    fn open_with(
        &self,
        sealer: &Sealer,
        key: &crate::seal::DataKey,
        fields: &FieldMap,
    ) -> Result<Arc<FieldMap>, SessionError> {
        let (opened, mut unopened) = sealer.open_fields(key, fields);
        if self.config().decode_policy == DecodePolicy::Strict {
            if let Some(err) = unopened.pop() {
                return Err(SessionError::Decode(err));
            }
        }
        Ok(Arc::new(opened))
    }

    /// Gives a session about to be saved a data key, if it has none yet (a new session).
    pub(super) fn ensure_data_key(&self, loaded: &mut Loaded) {
        if let Some(sealer) = self.sealer() {
            if loaded.data_key.is_none() {
                loaded.data_key = Some(sealer.new_key());
            }
        }
    }

    /// Adds a new session's data key to its first write.
    pub(super) fn store_data_key(&self, snapshot: &Snapshot, patch: &mut Patch) {
        if let (Some(sealer), Some(key)) = (self.sealer(), &snapshot.data_key) {
            patch
                .set
                .push((Cow::Borrowed(DATA_KEY_KEY), sealer.wrap_key(key)));
        }
    }

    /// `patch` as the store must receive it: its values sealed.
    pub(super) fn for_store<'p>(&self, snapshot: &Snapshot, patch: &'p Patch) -> Cow<'p, Patch> {
        match (self.sealer(), &snapshot.data_key) {
            (Some(sealer), Some(key)) => Cow::Owned(sealer.seal_patch(key, patch)),
            _ => Cow::Borrowed(patch),
        }
    }
}

#[cfg(not(feature = "encryption"))]
impl RequestSession {
    pub(super) fn open_loaded(
        &self,
        _: &mut Loaded,
        _: &SessionId,
        fields: Arc<FieldMap>,
    ) -> Result<(Arc<FieldMap>, Option<Bytes>), SessionError> {
        Ok((fields, None))
    }

    pub(super) fn open_more(
        &self,
        _: &Loaded,
        fields: Arc<FieldMap>,
    ) -> Result<Arc<FieldMap>, SessionError> {
        Ok(fields)
    }

    pub(super) fn ensure_data_key(&self, _: &mut Loaded) {}

    pub(super) fn store_data_key(&self, _: &Snapshot, _: &mut Patch) {}

    pub(super) fn for_store<'p>(&self, _: &Snapshot, patch: &'p Patch) -> Cow<'p, Patch> {
        Cow::Borrowed(patch)
    }
}
