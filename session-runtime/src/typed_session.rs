//! `TypedSession<T>`: the axum extractor and the handle a handler works with.

use std::{
    fmt,
    ops::{Deref, DerefMut},
    time::Duration,
};

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::{
    expiry::{Lifetime, SessionMetadata},
    index::{Index, IndexedSession, SessionHandle},
    record::RawRecord,
    schema::{SchemaFields, SessionData},
    session::{Handle, RequestSession},
    SessionError, SessionId,
};

/// A typed view of the request's session, as an axum extractor.
///
/// The generated accessors of `T` are called on it directly (it dereferences to them);
/// [`data`](Self::data) gives the whole struct. Fields are decoded lazily, on first access,
/// so a request pays only for the fields it touches. Changes are tracked per field; after the handler, the layer writes exactly the changed fields to the store, in
/// one call. A request that only reads writes nothing and sends no cookie.
///
/// Any number of `TypedSession`s, of the same or different schemas, can be extracted in one
/// request: they share one session (one ID, one record). Each holds its own copy of its
/// fields, and hands its changes to the shared session when it is dropped (at the latest
/// when the handler returns), so an extractor sees the changes of another one only if it
/// was extracted after that one was dropped.
///
/// Extracting again is the cheap handle: the record is loaded once per request, whatever
/// extracts it (a middleware, the handler, an extractor of your own such as a
/// `CurrentUser` built on `TypedSession::from_request_parts`); `examples/auth.rs` builds a
/// small login layer this way. A clone is such a handle too, to keep in the request's
/// extensions or move into a task: it starts from what the request's handles handed over,
/// without this handle's unsaved changes (see [`Clone`](#impl-Clone-for-TypedSession%3CT%3E)).
///
/// When the store fails, the extractor rejects the request with a `503` (see
/// [`SessionError`]). A page that can do without the session takes
/// `Result<TypedSession<T>, SessionError>` instead, and keeps answering while the store is
/// down:
///
/// ```
/// # use axum::{routing::get, Router};
/// # use session_runtime::{Key, MemoryStore, SessionData, SessionError, SessionLayer, TypedSession};
/// # #[derive(SessionData)]
/// # struct Auth { user: Option<String> }
/// async fn home(auth: Result<TypedSession<Auth>, SessionError>) -> String {
///     match auth.as_ref().map(|auth| auth.user().clone()) {
///         Ok(Some(user)) => format!("Hello, {user}"),
///         Ok(None) => "Hello".to_owned(),
///         Err(_) => "Hello (sign-in is unavailable right now)".to_owned(),
///     }
/// }
/// # let _: Router = Router::new().route("/", get(home))
/// #     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
/// ```
///
/// The layer saves the session once the handler returns. An extractor kept beyond that
/// (moved into a spawned task, say) can still [`save`](Self::save) its changes, but changes
/// it only drops are lost, and logged as an error.
///
/// ```
/// use axum::{routing::get, Router};
/// use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
///
/// #[derive(SessionData)]
/// struct Visits {
///     count: u64,
/// }
///
/// async fn count(mut visits: TypedSession<Visits>) -> String {
///     *visits.count_mut() += 1;
///     format!("visit number {}", visits.count())
/// }
///
/// let app: Router = Router::new()
///     .route("/", get(count))
///     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
/// ```
pub struct TypedSession<T: SessionData> {
    session: RequestSession,
    fields: Box<T::Fields>,
    stored_version: Option<u32>,
    /// The session's destroy count when this handle last saw it.
    destroys: u32,
    /// This handle's place among the request's, so its stale changes never overwrite
    /// another's newer ones.
    handle: Handle,
}

impl<T: SessionData> TypedSession<T> {
    /// The session's ID, or `None` while the session is not stored yet (a new session gets
    /// its ID when it is first saved).
    ///
    /// The ID is a bearer secret: do not log it or send it anywhere but the cookie.
    ///
    /// ```
    /// # use axum::{routing::{get, post}, Router};
    /// # use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
    /// # #[derive(SessionData)]
    /// # struct Auth { user: Option<String> }
    /// async fn status(auth: TypedSession<Auth>) -> &'static str {
    ///     match auth.id() {
    ///         Some(_) => "a stored session",
    ///         None => "no session yet: nothing has been written",
    ///     }
    /// }
    /// # let _: Router = Router::new().route("/status", get(status))
    /// #     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    /// ```
    pub fn id(&self) -> Option<SessionId> {
        self.session.id()
    }

    /// Whether the session is new: not stored yet.
    ///
    /// ```
    /// # use axum::{routing::{get, post}, Router};
    /// # use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
    /// # #[derive(SessionData)]
    /// # struct Auth { user: Option<String> }
    /// async fn welcome(auth: TypedSession<Auth>) -> &'static str {
    ///     if auth.is_new() { "welcome" } else { "welcome back" }
    /// }
    /// # let _: Router = Router::new().route("/", get(welcome))
    /// #     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    /// ```
    pub fn is_new(&self) -> bool {
        self.session.id().is_none()
    }

    /// The whole schema struct. Decodes every field not decoded yet (once), which is why it
    /// takes `&mut self`; the typed accessors decode only what they touch.
    ///
    /// ```
    /// # use axum::{routing::get, Router};
    /// # use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
    /// #[derive(SessionData, Debug)]
    /// struct Prefs {
    ///     theme: String,
    ///     language: String,
    /// }
    ///
    /// async fn export(mut prefs: TypedSession<Prefs>) -> String {
    ///     format!("{:?}", prefs.data()) // Prefs { theme: .., language: .. }
    /// }
    /// # let _: Router = Router::new().route("/prefs", get(export))
    /// #     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    /// ```
    pub fn data(&mut self) -> &T {
        self.fields.data()
    }

    /// Gives the session a new ID after the handler, keeping its data; the old ID stops
    /// working. Call it whenever privileges change, above all at login, so that an ID an
    /// attacker planted before login is worthless after it (session fixation).
    ///
    /// ```
    /// # use axum::{routing::{get, post}, Router};
    /// # use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
    /// # #[derive(SessionData)]
    /// # struct Auth { user: Option<String> }
    /// async fn login(mut auth: TypedSession<Auth>) {
    ///     // ... check the credentials, then:
    ///     auth.set_user(Some("ada".into()));
    ///     auth.regenerate();
    /// }
    /// # let _: Router = Router::new().route("/login", post(login))
    /// #     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    /// ```
    pub fn regenerate(&mut self) {
        self.session.regenerate();
    }

    /// Ends the session: its record is deleted and the browser is told to drop the cookie.
    ///
    /// This handle's fields are reset to their defaults. Changes made before `destroy`, on
    /// any extractor of the request, end with the session; changes made after it, on any
    /// extractor, start a new session with a new ID. Another `TypedSession` of the request
    /// keeps showing the values it read until it is changed.
    ///
    /// ```
    /// # use axum::{routing::{get, post}, Router};
    /// # use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
    /// # #[derive(SessionData)]
    /// # struct Auth { user: Option<String> }
    /// async fn logout(mut auth: TypedSession<Auth>) {
    ///     auth.destroy();
    ///     assert!(auth.user().is_none());
    /// }
    /// # let _: Router = Router::new().route("/logout", post(logout))
    /// #     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    /// ```
    pub fn destroy(&mut self) {
        self.session.destroy();
        *self.fields =
            T::Fields::from_record(RawRecord::default(), crate::changes::FieldState::new());
        self.stored_version = None;
        self.destroys = self.session.destroys();
    }

    /// Overrides the idle timeout of this session, and makes its cookie persistent (for
    /// example "remember me for 30 days" at login). `None` goes back to the layer's setting.
    /// The override is stored with the session, so it holds on later requests.
    ///
    /// A session never lives more than 400 days past its last write or refresh, the
    /// longest lifetime browsers give a cookie: a longer timeout (even `Duration::MAX`, for
    /// "forever") means 400 days. A timeout under a second ends the session with this
    /// request: the cookie goes out with `Max-Age=0`, and the record expires in the store
    /// within that timeout.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use axum::{routing::{get, post}, Router};
    /// # use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
    /// # #[derive(SessionData)]
    /// # struct Auth { user: Option<String> }
    /// async fn login(mut auth: TypedSession<Auth>, remember_me: String) {
    ///     auth.set_user(Some("ada".into()));
    ///     auth.regenerate();
    ///     if remember_me == "on" {
    ///         auth.set_idle_timeout(Some(Duration::from_secs(30 * 24 * 3600)));
    ///     }
    /// }
    /// # let _: Router = Router::new().route("/login", post(login))
    /// #     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    /// ```
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.session
            .set_lifetime(timeout.map_or(Lifetime::Layer, Lifetime::IdleTimeout));
    }

    /// Makes this session's cookie session-only (no `Max-Age`: the browser drops it when it
    /// closes), the mirror of [`set_idle_timeout`](Self::set_idle_timeout) for "remember
    /// me" left unchecked; `false` goes back to the layer's setting. Stored with the
    /// session, so it holds on later requests; the server still expires the session after
    /// the layer's idle timeout. The later of this and `set_idle_timeout` wins.
    ///
    /// ```
    /// # use axum::{routing::post, Router};
    /// # use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
    /// # #[derive(SessionData)]
    /// # struct Auth { user: Option<String> }
    /// async fn login(mut auth: TypedSession<Auth>, remember_me: String) {
    ///     auth.set_user(Some("ada".into()));
    ///     auth.regenerate();
    ///     if remember_me != "on" {
    ///         auth.set_session_only_cookie(true); // gone when the browser closes
    ///     }
    /// }
    /// # let _: Router = Router::new().route("/login", post(login))
    /// #     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    /// ```
    pub fn set_session_only_cookie(&mut self, session_only: bool) {
        self.session.set_lifetime(if session_only {
            Lifetime::SessionOnly
        } else {
            Lifetime::Layer
        });
    }

    /// When the session was created, when it expires, when it was last written or refreshed,
    /// and whether its cookie is session-only.
    ///
    /// ```
    /// # use axum::{routing::get, Router};
    /// # use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
    /// # #[derive(SessionData)]
    /// # struct Auth { user: Option<String> }
    /// async fn account(auth: TypedSession<Auth>) -> String {
    ///     let meta = auth.metadata();
    ///     match meta.created {
    ///         Some(created) => format!("signed in since {created:?}, until {:?}", meta.expires_at),
    ///         None => "a new visitor".to_owned(),
    ///     }
    /// }
    /// # let _: Router = Router::new().route("/account", get(account))
    /// #     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    /// ```
    pub fn metadata(&self) -> SessionMetadata {
        self.session.metadata()
    }

    /// Saves the changes made so far now, instead of after the handler, and surfaces a
    /// store failure to the handler. Changes made afterwards are saved after the handler
    /// as usual.
    ///
    /// It also works after the response was sent (from a spawned task), except for what
    /// would need a new cookie, which can no longer reach the browser: creating the
    /// session, regenerating its ID, or any change to a session kept in the cookie itself.
    /// Those fail with [`SessionError::ResponseSent`] without being written (a `destroy()`
    /// made before them still ends the old session).
    ///
    /// On a store that keeps the session in the cookie, a save that would need a cookie
    /// larger than browsers accept fails with [`SessionError::CookieTooLarge`]: the changes
    /// saved with it are dropped, and the browser keeps the session it had, so the handler
    /// can answer with a message ("the cart is full") instead of a 500.
    ///
    /// ```
    /// # use axum::{routing::post, Router};
    /// # use session_runtime::{Key, MemoryStore, SessionData, SessionError, SessionLayer, TypedSession};
    /// #[derive(SessionData)]
    /// struct Order {
    ///     paid: bool,
    /// }
    ///
    /// async fn pay(mut order: TypedSession<Order>) -> Result<&'static str, SessionError> {
    ///     order.set_paid(true);
    ///     order.save().await?; // stored now: a failure answers 5xx before anything else
    ///     // ... the slow part: call the payment provider, send the receipt ...
    ///     Ok("paid")
    /// }
    /// # let _: Router = Router::new().route("/pay", post(pay))
    /// #     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    /// ```
    pub async fn save(&mut self) -> Result<(), SessionError> {
        forget_changes_from_before_a_destroy(self);
        self.session
            .flush::<T>(&mut self.fields, &mut self.stored_version, self.handle);
        self.session.persist(true).await
    }

    /// The live sessions that share this one's value of the indexed field ("your
    /// devices"), oldest first, this one marked [`is_current`](IndexedSession::is_current)
    /// once it is stored. Empty when the field holds no value that indexes (nobody is
    /// logged in). Each comes with an opaque handle to revoke it by, never its ID.
    ///
    /// ```
    /// # use axum::{routing::get, Router};
    /// # use session_runtime::{Key, MemoryStore, SessionData, SessionError, SessionLayer, TypedSession};
    /// #[derive(SessionData)]
    /// struct Auth {
    ///     #[session(index)]
    ///     user_id: Option<u64>,
    ///     device: String,
    /// }
    ///
    /// async fn devices(auth: TypedSession<Auth>) -> Result<String, SessionError> {
    ///     let mut page = String::new();
    ///     for session in auth.sessions(Auth::by_user_id()).await? {
    ///         let mark = if session.is_current() { " (this one)" } else { "" };
    ///         page += &format!("{}{mark}: {}\n", session.data::<Auth>().device, session.handle());
    ///     }
    ///     Ok(page)
    /// }
    /// # let _: Router = Router::new().route("/devices", get(devices))
    /// #     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    /// ```
    pub async fn sessions<V>(
        &self,
        index: Index<T, V>,
    ) -> Result<Vec<IndexedSession>, SessionError> {
        let Some(term) = self.index_term(index)? else {
            return Ok(Vec::new());
        };
        let current = self.id();
        crate::index::list(self.session.shared(), index.key(), &term, current.as_ref()).await
    }

    /// Revokes one of the sessions that share this one's value of the indexed field, by the
    /// handle a listing gave: whether it did. A handle of a session that does not share the
    /// value (another user's) revokes nothing, and neither does this session's own: end it
    /// with [`destroy`](Self::destroy).
    ///
    /// ```
    /// # use axum::{extract::Path, routing::post, Router};
    /// # use session_runtime::{index::SessionHandle, Key, MemoryStore, SessionData, SessionError, SessionLayer, TypedSession};
    /// # #[derive(SessionData)]
    /// # struct Auth { #[session(index)] user_id: Option<u64> }
    /// async fn sign_out(auth: TypedSession<Auth>, Path(handle): Path<String>) -> Result<&'static str, SessionError> {
    ///     let Ok(handle) = handle.parse::<SessionHandle>() else { return Ok("no such session") };
    ///     Ok(if auth.revoke(Auth::by_user_id(), &handle).await? { "signed out" } else { "no such session" })
    /// }
    /// # let _: Router = Router::new().route("/sessions/{handle}/revoke", post(sign_out))
    /// #     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    /// ```
    pub async fn revoke<V>(
        &self,
        index: Index<T, V>,
        handle: &SessionHandle,
    ) -> Result<bool, SessionError> {
        let Some(term) = self.index_term(index)? else {
            return Ok(false);
        };
        let shared = self.session.shared();
        let own = self.id().map(|id| SessionHandle::of(shared, &id));
        if own.as_ref() == Some(handle) {
            return Ok(false);
        }
        let revoked = crate::index::revoke(shared, index.key(), &term, |h| h == handle).await?;
        Ok(revoked > 0)
    }

    /// Revokes every other session that shares this one's value of the indexed field ("sign
    /// out everywhere else"): how many. This one stays.
    pub async fn revoke_others<V>(&self, index: Index<T, V>) -> Result<usize, SessionError> {
        let Some(term) = self.index_term(index)? else {
            return Ok(0);
        };
        let shared = self.session.shared();
        let own = self.id().map(|id| SessionHandle::of(shared, &id));
        crate::index::revoke(shared, index.key(), &term, |h| Some(h) != own.as_ref()).await
    }

    /// This handle's index term for `index`, if its field holds one.
    fn index_term<V>(&self, index: Index<T, V>) -> Result<Option<String>, SessionError> {
        self.fields
            .index_term(index.position())
            .map(|term| {
                crate::index::check_term(T::SCHEMA.name(), index.field(), term)
                    .map_err(SessionError::Encode)
            })
            .transpose()
    }
}

impl<T: SessionData> Deref for TypedSession<T> {
    type Target = T::Fields;
    #[inline]
    fn deref(&self) -> &T::Fields {
        &self.fields
    }
}

impl<T: SessionData> DerefMut for TypedSession<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T::Fields {
        // Every change goes through here: changes made before a destroy (through another
        // extractor) are dropped before this one is recorded.
        forget_changes_from_before_a_destroy(self);
        &mut self.fields
    }
}

/// If the session was destroyed (through another extractor) since `this` last looked, the
/// changes `this` holds were made to the session that ended: they are dropped, as the
/// destroy dropped everyone else's, and so is the stored version, which was that session's.
/// Its values stay as they are; only changes made from now on are saved, to the new
/// session. A free function, not a method: a method would shadow a field's accessor.
fn forget_changes_from_before_a_destroy<T: SessionData>(this: &mut TypedSession<T>) {
    let destroys = this.session.destroys();
    if destroys != this.destroys {
        this.fields.state_mut().clear();
        this.stored_version = None;
        this.destroys = destroys;
    }
}

impl<T: SessionData> Drop for TypedSession<T> {
    fn drop(&mut self) {
        // Dropped while the handler's thread unwinds: the request saves nothing it had not
        // saved, whatever catches the panic and answers for it.
        if std::thread::panicking() {
            self.session.abandon();
        }
        forget_changes_from_before_a_destroy(self);
        self.session
            .release::<T>(&mut self.fields, &mut self.stored_version, self.handle);
        self.session.handle_dropped();
    }
}

/// A new handle on the request's session, as cheap as extracting again (no store round
/// trip): it reads the session as the request's handles have handed it over, and starts
/// with no changes of its own. Changes this handle has not handed over yet (by dropping or
/// [`save`](TypedSession::save)) are not in the clone, as they are not in a second
/// extractor's. A clone can be kept in the request's extensions, for a middleware's
/// handlers to take, or moved into a task.
///
/// ```
/// # use axum::{extract::Request, middleware::Next, response::Response};
/// # use session_runtime::{SessionData, TypedSession};
/// #[derive(SessionData)]
/// struct Auth { user: Option<String> }
///
/// /// Middleware: loads the session once and hands a handle to the handlers.
/// async fn with_session(auth: TypedSession<Auth>, mut request: Request, next: Next) -> Response {
///     request.extensions_mut().insert(auth.clone());
///     drop(auth);
///     next.run(request).await
/// }
/// # fn main() {}
/// ```
impl<T: SessionData> Clone for TypedSession<T> {
    fn clone(&self) -> Self {
        let (fields, stored_version, handle) = self.session.extract_loaded::<T>();
        self.session.handle_made();
        Self {
            session: self.session.clone(),
            fields,
            stored_version,
            destroys: self.session.destroys(),
            handle,
        }
    }
}

impl<T: SessionData> fmt::Debug for TypedSession<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedSession")
            .field("schema", &T::SCHEMA.name())
            .field("changes", self.fields.state())
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync, T: SessionData> FromRequestParts<S> for TypedSession<T> {
    type Rejection = SessionError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, SessionError> {
        let session = parts
            .extensions
            .get::<RequestSession>()
            .cloned()
            .ok_or(SessionError::MissingLayer)?;
        check_index_support(&session, T::SCHEMA)?;
        let (fields, stored_version, handle) = session.extract::<T>(&parts.headers).await?;
        session.handle_made();
        let destroys = session.destroys();
        Ok(Self {
            session,
            fields,
            stored_version,
            destroys,
            handle,
        })
    }
}

/// A schema with an indexed field needs a store that keeps the index. Not generic, like the
/// rest of the extraction.
fn check_index_support(
    session: &RequestSession,
    schema: &'static crate::Schema,
) -> Result<(), SessionError> {
    if schema.is_indexed() && !session.shared().store.supports_index() {
        tracing::error!(
            schema = schema.name(),
            "a schema with an indexed field was used with a store that does not keep the session index"
        );
        return Err(SessionError::Store(crate::StoreError::unsupported_index()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Every method of `TypedSession` must be in the derive's list of reserved names, or a
    /// field's accessor could be silently shadowed by it.
    #[test]
    fn every_method_is_reserved_by_the_derive() {
        let symbols = include_str!("../../session-macros/src/symbol.rs");
        let list_start = symbols.find("RESERVED_METHODS").expect("list exists");
        let list = &symbols[list_start..];
        let list = &list[..list.find("];").expect("list ends")];
        let reserved: Vec<&str> = list.split('"').skip(1).step_by(2).collect();

        let source = include_str!("typed_session.rs");
        let body_start = source
            .find("impl<T: SessionData> TypedSession<T> {")
            .expect("inherent impl exists");
        let body = &source[body_start..];
        let body = &body[..body.find("\n}\n").expect("impl ends")];
        let methods: Vec<&str> = body
            .match_indices("pub fn ")
            .chain(body.match_indices("pub async fn "))
            .map(|(i, m)| {
                let rest = &body[i + m.len()..];
                // The name ends at its arguments, or at its generic parameters.
                let end = rest.find(['(', '<']).expect("method has arguments");
                &rest[..end]
            })
            .collect();
        assert!(methods.len() >= 7, "found {methods:?}");
        for method in methods {
            assert!(
                reserved.contains(&method),
                "TypedSession::{method} is missing from RESERVED_METHODS in session-macros/src/symbol.rs"
            );
        }
        // Methods of the traits it implements, and of blanket impls for every type.
        for name in [
            "deref",
            "deref_mut",
            "drop",
            "fmt",
            "clone",
            "clone_from",
            "into",
            "try_into",
            "borrow",
            "borrow_mut",
            "type_id",
        ] {
            assert!(reserved.contains(&name), "{name} is not reserved");
        }
        for implemented in [
            "impl<T: SessionData> Deref for TypedSession<T>",
            "impl<T: SessionData> DerefMut for TypedSession<T>",
            "impl<T: SessionData> Drop for TypedSession<T>",
            "impl<T: SessionData> fmt::Debug for TypedSession<T>",
            "impl<T: SessionData> Clone for TypedSession<T>",
            // `from_request_parts` takes no `self`: it cannot be called as a method.
            "impl<S: Send + Sync, T: SessionData> FromRequestParts<S> for TypedSession<T>",
        ] {
            assert!(source.contains(implemented), "{implemented}");
        }
        // The inherent impl and the six above: any other trait impl must have its methods
        // added above and to the list.
        assert_eq!(
            source.matches("\nimpl<").count(),
            7,
            "TypedSession implements a new trait: reserve its methods"
        );
    }
}
