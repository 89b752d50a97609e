//! Helpers for an app's own tests: a session prepared in the layer's store, with the cookie
//! that names it, so a test can call a handler with a given session state without writing
//! HMAC code or going through a login.

use std::{borrow::Cow, time::SystemTime};

use bytes::Bytes;

use crate::{
    changes::FieldState,
    decode::collect_changes,
    key::signed,
    meta::{to_millis, CREATED_KEY},
    record::RawRecord,
    schema::{SchemaFields, SessionData},
    store::Patch,
    SessionError, SessionId, SessionLayer, StoreError,
};

impl SessionLayer {
    /// Stores a new session whose schema `T` holds what `prepare` sets, and returns its ID
    /// and the `Cookie` header value that names it (`name=signed-id`), for a test request
    /// to this layer's app. The session lives for the layer's idle timeout.
    ///
    /// ```
    /// use axum::{body::Body, http::{header, Request}, routing::get, Router};
    /// use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
    /// use tower::ServiceExt;
    ///
    /// #[derive(SessionData)]
    /// struct Auth {
    ///     user: Option<String>,
    /// }
    ///
    /// async fn whoami(auth: TypedSession<Auth>) -> String {
    ///     auth.user().clone().unwrap_or_default()
    /// }
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate());
    /// let (_id, cookie) = layer
    ///     .prepare_session::<Auth>(|auth| auth.set_user(Some("ada".into())))
    ///     .await
    ///     .unwrap();
    /// let app = Router::new().route("/whoami", get(whoami)).layer(layer);
    /// let request = Request::get("/whoami").header(header::COOKIE, cookie).body(Body::empty()).unwrap();
    /// let response = app.oneshot(request).await.unwrap();
    /// let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
    /// assert_eq!(body, "ada");
    /// # });
    /// ```
    pub async fn prepare_session<T: SessionData>(
        &self,
        prepare: impl FnOnce(&mut T::Fields),
    ) -> Result<(SessionId, String), SessionError> {
        let mut fields = T::Fields::from_record(RawRecord::default(), FieldState::new());
        prepare(&mut fields);
        let mut writes = Vec::new();
        collect_changes::<T>(&mut fields, None, &mut writes).map_err(SessionError::Encode)?;
        let now = SystemTime::now();
        let config = &self.shared.config;
        let (expires_at, _) = config
            .expiry
            .expires_at(None, crate::expiry::Lifetime::Layer, now);
        let mut patch = Patch::expiry_only(expires_at);
        patch.set = writes
            .into_iter()
            .filter_map(|(key, value)| value.map(|bytes| (key, bytes)))
            .collect();
        patch.set.push((
            Cow::Borrowed(CREATED_KEY),
            Bytes::from(to_millis(now).to_string()),
        ));
        #[cfg(feature = "encryption")]
        if let Some(sealer) = &self.shared.sealer {
            let key = sealer.new_key();
            patch.set.push((
                Cow::Borrowed(crate::meta::DATA_KEY_KEY),
                sealer.wrap_key(&key),
            ));
            patch = crate::session::seal_patch(sealer, &key, &patch);
        }
        let id = SessionId::generate();
        let id = match self.shared.store.create(&id, &patch).await {
            Ok(replaced) => replaced.unwrap_or(id),
            Err(StoreError::Collision) => return Err(SessionError::IdExhausted),
            Err(err) => return Err(err.into()),
        };
        let cookie = self.cookie_for(&id);
        Ok((id, cookie))
    }

    /// The `Cookie` header value (`name=signed-id`) this layer reads as session `id`: for a
    /// test request naming a session prepared in the store some other way.
    ///
    /// ```
    /// use session_runtime::{Key, MemoryStore, SessionId, SessionLayer};
    ///
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate()).with_cookie_name("sid").unwrap();
    /// let cookie = layer.cookie_for(&SessionId::from_store("prepared"));
    /// assert!(cookie.starts_with("sid=prepared."));
    /// ```
    pub fn cookie_for(&self, id: &SessionId) -> String {
        let shared = &self.shared;
        format!(
            "{}={}",
            shared.config.cookie.name,
            signed(id.as_str(), &shared.signer.tag(id.as_str()))
        )
    }
}
