//! Saving a request's session after the handler (or early, from `TypedSession::save`):
//! destroy, regenerate, create or save as needed, or a throttled expiry refresh, and the
//! cookie the response carries.

use std::{
    borrow::Cow,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use bytes::Bytes;

use super::{RequestSession, Snapshot};
use crate::{
    chain::Chain,
    meta::{to_millis, CREATED_KEY, IDLE_TIMEOUT_KEY},
    session_cookie::CookieOut,
    store::Patch,
    SessionError, SessionId, StoreError,
};

/// How many fresh IDs to try when the store reports collisions.
const ID_ATTEMPTS: usize = 4;

/// Logs a failed expiry refresh: the first, then at most one a minute, since every read of
/// every due session meets the same failure while it lasts.
fn refresh_failed(err: &StoreError) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = to_millis(SystemTime::now());
    let last = LAST.load(Ordering::Relaxed);
    let due = last == 0 || now.saturating_sub(last) >= 60_000;
    if due
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            error = %Chain(err),
            "could not refresh a session's expiry; the read was served, and later reads try again (logged at most once a minute)"
        );
    }
}

impl RequestSession {
    /// Writes this request's changes to the store: destroy, regenerate, create or save
    /// as needed, or a throttled expiry refresh. Decides the response cookie.
    /// `early` is set for a save from inside the handler: the saved writes are then folded
    /// into the loaded record so later extractors in the same request see them.
    pub(crate) async fn persist(&self, early: bool) -> Result<(), SessionError> {
        // After the handler, the response future has already asked this.
        if self.is_abandoned() {
            tracing::debug!(
                "session changes not saved: the handler panicked, or the save policy refused its response"
            );
        }
        if (early && self.nothing_to_persist()) || self.is_abandoned() {
            if !early {
                self.0.finished.store(true, Ordering::Release);
            }
            return Ok(());
        }
        let Some(mut snapshot) = self.snapshot(early)? else {
            return Ok(());
        };

        if let Some(old) = &snapshot.doomed {
            self.store().delete(old).await?;
            self.state().cookie = Some(CookieOut::Remove);
            tracing::debug!("session destroyed; removal cookie sent");
        }

        let now = SystemTime::now();
        let expiry = &self.config().expiry;
        let (mut expires_at, mut max_age) =
            expiry.expires_at(snapshot.created, snapshot.lifetime, now);
        // A write to a stored session pushes its expiry out on the same schedule as a read:
        // once the expiry would gain the refresh interval. Until then the stored expiry
        // stays (so a store need not rewrite it), and a cookie sent says the same.
        let kept = snapshot.expires_at.filter(|current| {
            snapshot.id.is_some()
                && !snapshot.regenerate
                && !snapshot.stale_record
                && !snapshot.pending.contains_key(IDLE_TIMEOUT_KEY)
                && *current <= expires_at
                && !expiry.refresh_due(Some(*current), expires_at, snapshot.lifetime.idle_timeout())
        });
        if let Some(current) = kept {
            expires_at = current;
            max_age = max_age.map(|_| current.duration_since(now).unwrap_or_default());
        }
        let mut patch = Patch::expiry_only(expires_at);
        for (key, value) in std::mem::take(&mut snapshot.pending) {
            match value {
                Some(bytes) => patch.set.push((key, bytes)),
                None => patch.remove.push(key),
            }
        }

        // A save from an extractor that outlived its response (in a spawned task) cannot give
        // the browser a new cookie any more: refuse what would need one, before writing.
        let after_response = early && self.0.finished.load(Ordering::Acquire);
        if after_response && (snapshot.regenerate || (snapshot.id.is_none() && !patch.is_empty())) {
            return Err(SessionError::ResponseSent);
        }

        // A new session's first write stores its creation time (and its data key).
        if snapshot.id.is_none() && !patch.is_empty() {
            patch.set.push((
                Cow::Borrowed(CREATED_KEY),
                Bytes::from(to_millis(now).to_string()),
            ));
            self.store_data_key(&snapshot, &mut patch);
        }
        // What the store gets: the values sealed, when the layer encrypts at rest.
        let patch = self.for_store(&snapshot, &patch);
        let Some(cookie_id) = self.write(&snapshot, &patch, max_age).await? else {
            return Ok(());
        };
        // A store that keeps the session in the cookie gave it a value too large for a
        // browser: the save fails here, before the request takes it for saved, and the
        // browser keeps the cookie it has (the session as it was). `TypedSession::save`
        // surfaces it to the handler.
        if let Some(id) = &cookie_id {
            let size = crate::session_cookie::set_cookie_len(
                &self.config().cookie.name,
                id,
                max_age,
                &self.shared().cookie_attributes,
            );
            if size > crate::session_cookie::MAX_COOKIE_LEN {
                return Err(SessionError::CookieTooLarge {
                    size,
                    limit: crate::session_cookie::MAX_COOKIE_LEN,
                });
            }
        }

        // A store that keeps the session in the cookie itself gave it a new value: after the
        // response, that value has nowhere to go, so the change is not kept anywhere.
        if after_response
            && cookie_id
                .as_ref()
                .is_some_and(|new| Some(new) != snapshot.id.as_ref())
        {
            return Err(SessionError::ResponseSent);
        }
        self.saved(early, &snapshot, &patch, now, cookie_id, max_age);
        Ok(())
    }

    /// Takes what a save works from out of the state, under the lock: `None` when there is
    /// no session to save; the first error an extractor left (others are logged).
    fn snapshot(&self, early: bool) -> Result<Option<Snapshot>, SessionError> {
        let mut state = self.state();
        if !early {
            self.0.finished.store(true, Ordering::Release);
        }
        if let Some(err) = state.errors.pop() {
            for other in state.errors.drain(..) {
                tracing::error!(error = %Chain(&other), "session error");
            }
            return Err(err);
        }
        let doomed = state.doomed.take();
        let regenerate = std::mem::take(&mut state.regenerate);
        let pending = std::mem::take(&mut state.pending);
        let Some(loaded) = state.loaded.as_mut() else {
            return Ok(None);
        };
        self.ensure_data_key(loaded);
        if !early {
            // Nothing decodes after the final save: let go of the loaded record, so a
            // store that shares records need not copy it to apply the patch.
            loaded.base = None;
        }
        Ok(Some(Snapshot {
            doomed,
            regenerate,
            pending,
            id: loaded.id.clone(),
            stale_key: loaded.stale_key,
            stale_record: loaded.stale_record,
            created: loaded.created,
            lifetime: loaded.lifetime,
            expires_at: loaded.expires_at,
            tag: loaded.tag.take(),
            #[cfg(feature = "encryption")]
            opener: loaded.opener.clone(),
        }))
    }

    /// The one store write this request needs: regenerate, save, a refresh, or create.
    /// `None` when nothing was written and nothing is left to do; otherwise the ID the
    /// response's cookie must carry, if it needs one.
    async fn write(
        &self,
        snapshot: &Snapshot,
        patch: &Patch,
        max_age: Option<Duration>,
    ) -> Result<Option<Option<SessionId>>, SessionError> {
        // After a write to an existing session, the cookie is re-sent when the store gave a
        // new ID, when its Max-Age slides, or when it was signed by a previous key.
        let resend = |replaced: Option<SessionId>, id: SessionId| {
            replaced.or_else(|| (max_age.is_some() || snapshot.stale_key).then_some(id))
        };
        let cookie_id = match snapshot.id.clone() {
            Some(old) if snapshot.regenerate => Some(self.regenerate_in_store(&old, patch).await?),
            Some(id) if !patch.is_empty() => {
                let replaced = self.store().save(&id, patch).await?;
                resend(replaced, id)
            }
            Some(id) => {
                let expiry = &self.config().expiry;
                let expires_at = patch.expires_at;
                if snapshot.stale_record
                    || expiry.refresh_due(
                        snapshot.expires_at,
                        expires_at,
                        snapshot.lifetime.idle_timeout(),
                    )
                {
                    match self.store().touch(&id, expires_at).await {
                        Ok(replaced) => resend(replaced, id),
                        // Deleted or expired since the load (a logout in another tab): this
                        // request changed nothing, so nothing is lost and it answers as
                        // usual. No cookie: a removal cookie could reach the browser after,
                        // and so remove, the cookie of a session started since.
                        Err(StoreError::NotFound) => {
                            tracing::debug!(
                                "session ended while a read-only request ran; expiry not refreshed"
                            );
                            return Ok(None);
                        }
                        // The read itself succeeded: a refresh the store refuses (Redis out
                        // of memory, say) does not fail it. The expiry is still due, so a
                        // later request tries again.
                        Err(err) => {
                            refresh_failed(&err);
                            return Ok(None);
                        }
                    }
                } else if snapshot.stale_key {
                    Some(id)
                } else {
                    return Ok(None);
                }
            }
            None if !patch.is_empty() => Some(self.create_in_store(patch).await?),
            None => return Ok(None),
        };
        Ok(Some(cookie_id))
    }

    /// Records a successful write in the state and decides the response's cookie.
    fn saved(
        &self,
        early: bool,
        snapshot: &Snapshot,
        patch: &Patch,
        now: SystemTime,
        cookie_id: Option<SessionId>,
        max_age: Option<Duration>,
    ) {
        let what = if snapshot.regenerate {
            "regenerated under a new ID"
        } else if snapshot.id.is_none() {
            "created"
        } else if patch.is_empty() {
            "refreshed"
        } else {
            "saved"
        };
        // Names of store keys and counts only: never a value, an ID or a cookie.
        tracing::debug!(
            written = patch.set.len(),
            removed = patch.remove.len(),
            cookie_sent = cookie_id.is_some(),
            early,
            "session {what}"
        );
        tracing::trace!(
            written = ?patch.set.iter().map(|(key, _)| key).collect::<Vec<_>>(),
            removed = ?patch.remove,
            expires_at = ?patch.expires_at,
            "session write"
        );
        let mut state = self.state();
        if let Some(loaded) = state.loaded.as_mut() {
            if early {
                patch.apply_to(Arc::make_mut(loaded.base.get_or_insert_with(Arc::default)));
            }
            loaded.created = loaded.created.or(Some(now));
            loaded.expires_at = Some(patch.expires_at);
            loaded.stale_key = false;
            loaded.stale_record = false;
            if let Some(new) = &cookie_id {
                loaded.id = Some(new.clone());
            }
        }
        if let Some(cookie_id) = cookie_id {
            // The request's own cookie still names this ID under the current key.
            let tag = snapshot
                .tag
                .filter(|_| snapshot.id.as_ref() == Some(&cookie_id));
            state.cookie = Some(CookieOut::Set {
                id: cookie_id,
                max_age,
                tag,
            });
        }
    }

    async fn regenerate_in_store(
        &self,
        old: &SessionId,
        patch: &Patch,
    ) -> Result<SessionId, SessionError> {
        for _ in 0..ID_ATTEMPTS {
            let new = SessionId::generate();
            match self.store().regenerate(old, &new, patch).await {
                Ok(replaced) => return Ok(replaced.unwrap_or(new)),
                Err(StoreError::Collision) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(SessionError::IdExhausted)
    }

    async fn create_in_store(&self, patch: &Patch) -> Result<SessionId, SessionError> {
        for _ in 0..ID_ATTEMPTS {
            let id = SessionId::generate();
            match self.store().create(&id, patch).await {
                Ok(replaced) => return Ok(replaced.unwrap_or(id)),
                Err(StoreError::Collision) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(SessionError::IdExhausted)
    }

    /// The cookie decided by [`persist`](Self::persist), if any.
    pub(crate) fn take_cookie(&self) -> Option<CookieOut> {
        self.state().cookie.take()
    }
}
