//! Loading a request's session: finding the verified ID in the cookie, reading the keys each
//! schema needs (and the whole record for a migration), and decoding a schema from it.

use std::{borrow::Cow, sync::atomic::Ordering};

use arrayvec::ArrayVec;
use http::HeaderMap;

use super::{Handle, Loaded, RequestSession};
use crate::{
    chain::Chain,
    decode,
    expiry::Lifetime,
    key::Rejected,
    meta::{from_millis, parse_u64, CREATED_KEY, DATA_KEY_KEY, IDLE_TIMEOUT_KEY},
    schema::{Schema, SessionData},
    session_cookie::{request_values, CookieOut, MAX_COOKIE_LEN},
    store::LoadKeys,
    DecodePolicy, SessionError, SessionId, StoreError,
};

/// How many cookies with the session cookie's name one request may have checked.
const MAX_CANDIDATES: usize = 4;

/// A verified session ID from a cookie, whether a previous key signed it, and its tag under
/// the current key (to send it again without signing again).
type Candidate = (SessionId, bool, Option<[u8; 32]>);

/// A new `TypedSession`'s parts: its fields, the schema's stored version, its number.
type NewHandle<T> = (Box<<T as SessionData>::Fields>, Option<u32>, Handle);

impl RequestSession {
    /// Loads what schema `T` needs and decodes it.
    pub(crate) async fn extract<T: SessionData>(
        &self,
        headers: &HeaderMap,
    ) -> Result<NewHandle<T>, SessionError> {
        self.0.used.store(true, Ordering::Release);
        crate::registry::check::<T>()?;
        self.ensure_loaded(T::SCHEMA, headers).await?;
        self.new_handle::<T>(self.config().decode_policy)
            .map_err(SessionError::Decode)
    }

    /// A new handle of schema `T` on what is loaded already (a `TypedSession<T>` of this
    /// request exists, so its keys are): [`extract`](Self::extract) without the load. Read
    /// leniently (which never fails): the view held what the first handle decoded, plus
    /// handed-over writes this code encoded.
    pub(crate) fn extract_loaded<T: SessionData>(&self) -> NewHandle<T> {
        self.new_handle::<T>(DecodePolicy::Lenient)
            .unwrap_or_else(|_| {
                let mut state = self.state();
                let fields = <T::Fields as crate::schema::SchemaFields>::from_record(
                    state.view(),
                    crate::changes::FieldState::new(),
                );
                (Box::new(fields), None, state.next_handle())
            })
    }

    /// Decodes `T` from the loaded record and this request's writes, and numbers the new
    /// handle.
    fn new_handle<T: SessionData>(
        &self,
        policy: DecodePolicy,
    ) -> Result<NewHandle<T>, crate::DecodeError> {
        let mut state = self.state();
        let decoded = decode::decode::<T>(&state.view(), policy)?;
        state.pending.extend(decoded.extra);
        Ok((decoded.fields, decoded.stored_version, state.next_handle()))
    }

    /// Loads `schema`'s keys (and the session's metadata on the request's first load). Not
    /// generic: the load, its logging and its future are compiled once, not once per schema.
    async fn ensure_loaded(
        &self,
        schema: &'static Schema,
        headers: &HeaderMap,
    ) -> Result<(), SessionError> {
        // First load of the request: find the cookie and read this schema's keys plus metadata.
        let first = self.state().loaded.is_none();
        if first {
            let (candidates, rejected) = self.cookie_ids(headers);
            if candidates.is_empty() {
                let mut state = self.state();
                state.loaded.get_or_insert_with(Loaded::fresh);
                // A cookie that failed verification is removed, so the browser stops sending
                // it (and the warning is logged once, not on every request); a session this
                // request starts replaces it anyway.
                if rejected && state.cookie.is_none() {
                    state.cookie = Some(CookieOut::Remove);
                }
                return Ok(());
            }
            // A browser can hold two cookies of the session's name (one left under an old
            // `Path` or `Domain`), and sends both; the first that names a live session wins.
            let mut found = None;
            for (id, stale_key, tag) in candidates {
                let record = match self
                    .store()
                    .load(&id, LoadKeys::Only(schema.load_keys()))
                    .await
                {
                    Ok(record) => record,
                    // Unreadable data under the session's ID: like a record that fails to
                    // decode, it does not take the visitor's every request down. It is left
                    // as it is; the new session gets a new ID.
                    Err(err @ StoreError::Corrupt(_))
                        if self.config().decode_policy == DecodePolicy::Lenient =>
                    {
                        tracing::warn!(
                            error = %Chain(&err),
                            "the session cookie names unreadable data in the store; starting a new session"
                        );
                        None
                    }
                    Err(err) => return Err(err.into()),
                };
                if let Some(record) = record {
                    found = Some((record, id, stale_key, tag));
                    break;
                }
            }
            tracing::debug!(
                found = found.is_some(),
                keys = found.as_ref().map_or(0, |(r, ..)| r.fields.len()),
                complete = found.as_ref().is_some_and(|(r, ..)| r.complete),
                "session loaded"
            );
            let mut loaded = Loaded::fresh();
            // The data key sealed again, for the request's write (encryption at rest).
            let mut rewrap = None;
            if let Some((record, id, stale_key, tag)) = found {
                loaded.complete = record.complete;
                // Only a partial record is ever asked again, for another schema's keys.
                if !record.complete {
                    loaded.loaded_schemas.push(schema);
                }
                loaded.expires_at = record.expires_at;
                loaded.stale_record = record.stale;
                loaded.created = record
                    .fields
                    .get(CREATED_KEY)
                    .and_then(|v| parse_u64(v))
                    .and_then(from_millis);
                loaded.lifetime =
                    Lifetime::decode(record.fields.get(IDLE_TIMEOUT_KEY).map(|v| &v[..]));
                rewrap = self.found_data_key(&mut loaded, &id, &record.fields);
                loaded.base = Some(record.fields);
                loaded.stale_key = stale_key;
                loaded.tag = tag;
                loaded.id = Some(id);
                if self.config().expiry.past_absolute_timeout(loaded.created) {
                    tracing::debug!("session reached its absolute timeout; starting a new one");
                    if let Some(id) = loaded.id.take() {
                        self.store().delete(&id).await?;
                    }
                    loaded = Loaded::fresh();
                }
            } else {
                tracing::debug!(
                    "session cookie names a session the store does not have; starting a new one"
                );
            }
            let mut state = self.state();
            if state.loaded.is_none() {
                let stored = loaded.id.is_some();
                state.loaded = Some(loaded);
                if let Some(sealed) = rewrap.filter(|_| stored) {
                    state.queue(Cow::Borrowed(DATA_KEY_KEY), Some(sealed));
                }
            }
        }

        // A later schema: load its keys (values this request wrote are kept).
        let missing: Option<SessionId> = {
            let state = self.state();
            let loaded = state.loaded.as_ref().expect("set above");
            match &loaded.id {
                Some(id)
                    if !loaded.complete
                        && !loaded
                            .loaded_schemas
                            .iter()
                            .any(|s| std::ptr::eq(*s, schema)) =>
                {
                    Some(id.clone())
                }
                _ => None,
            }
        };
        if let Some(id) = missing {
            let record = self
                .store()
                .load(&id, LoadKeys::Only(schema.load_keys()))
                .await?;
            let mut state = self.state();
            let loaded = state.loaded.as_mut().expect("set above");
            loaded.loaded_schemas.push(schema);
            if let Some(record) = record {
                loaded.merge(record);
            }
        }

        // A migration needs every key of the schema's namespace.
        let full: Option<SessionId> = {
            let state = self.state();
            let version = decode::schema_version(&state.view(), schema).ok().flatten();
            let loaded = state.loaded.as_ref().expect("set above");
            match &loaded.id {
                Some(id)
                    if !loaded.complete && decode::schema_needs_full_record(schema, version) =>
                {
                    Some(id.clone())
                }
                _ => None,
            }
        };
        if let Some(id) = full {
            let record = self.store().load(&id, LoadKeys::All).await?;
            let mut state = self.state();
            let loaded = state.loaded.as_mut().expect("set above");
            loaded.complete = true;
            if let Some(record) = record {
                loaded.merge(record);
            }
        }
        Ok(())
    }

    /// The verified session IDs in the request's cookies, in the order sent, each with
    /// whether it was signed by a previous key and its tag. Anything else is ignored (and
    /// logged without the value).
    fn cookie_ids(&self, headers: &HeaderMap) -> (ArrayVec<Candidate, MAX_CANDIDATES>, bool) {
        let name = self.config().cookie.name.as_str();
        let mut rejected = None;
        let mut verified_ids = ArrayVec::new();
        let values = headers
            .get_all(http::header::COOKIE)
            .into_iter()
            .flat_map(|header| request_values(header.as_bytes(), name));
        // Each candidate costs an HMAC per key: a header stuffed with cookies of this name
        // (a browser holds at most a few: other paths, an old domain) costs no more than this.
        for (checked, value) in values.enumerate() {
            if checked == MAX_CANDIDATES {
                rejected = Some("too many cookies with the session's name; the rest unchecked");
                break;
            }
            if value.len() > MAX_COOKIE_LEN {
                rejected = Some("oversized");
                continue;
            }
            let Ok(value) = std::str::from_utf8(value) else {
                rejected = Some("not valid text");
                continue;
            };
            match self.shared().signer.verify(value) {
                Ok(verified) => {
                    let tag = (!verified.stale_key).then_some(verified.tag);
                    verified_ids.push((
                        SessionId::from_str_unverified(verified.value),
                        verified.stale_key,
                        tag,
                    ));
                }
                Err(Rejected::Malformed) => rejected = Some("malformed"),
                Err(Rejected::BadSignature) => rejected = Some("bad signature"),
            }
        }
        let rejected = rejected.filter(|_| verified_ids.is_empty());
        if let Some(reason) = rejected {
            tracing::warn!(
                cookie = name,
                reason,
                "ignoring a session cookie that failed verification; starting a new session"
            );
        }
        (verified_ids, rejected.is_some())
    }
}
