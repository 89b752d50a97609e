//! `SessionLayer`: the tower middleware that gives each request its session and saves it
//! after the handler. The layer and its settings are here; the service it makes is in
//! `service`, and the response future that saves the session in `future`, as tower-http
//! lays out its middleware.

mod future;
mod service;
mod testing;

use std::{borrow::Borrow, fmt, sync::Arc, time::Duration};

use tower_layer::Layer;

pub use self::{future::ResponseFuture, service::SessionService};

use crate::{
    config::{Config, ConfigError},
    session::Shared,
    session_cookie::{valid_attribute_value, valid_cookie_name, CookieConfig, SameSite},
    store::SessionStore,
    DecodePolicy, Key,
};

/// The session middleware. Add it to a `Router` with `.layer(..)`; handlers then take
/// [`TypedSession<T>`](crate::TypedSession) arguments.
///
/// Defaults: cookie `id` on path `/`, `HttpOnly`, `Secure`, `SameSite=Lax`, persistent with
/// a Max-Age that slides with the 24-hour idle timeout; no absolute timeout; read-only
/// requests refresh the expiry at most once a minute.
///
/// A response to a request whose handler used the session gets `Vary: Cookie` (unless its
/// `Vary` already names `Cookie` or `*`), so HTTP caches do not share it between visitors.
///
/// # Settings
///
/// Every setting that can be wrong returns `Result<Self, ConfigError>`: an invalid name,
/// path or domain, and any combination of cookie settings that browsers refuse, so that no
/// session would ever stick (`SameSite=None` or `Partitioned` without `Secure`, a
/// `__Secure-` name without `Secure`, a `__Host-` name without `Secure`, with a `Domain` or
/// on a path other than `/`). The error names the setting to change, and the layer keeps
/// its previous, valid settings. A layer is therefore always valid: applying it never
/// panics. The other settings (timeouts, decode policy, keys) cannot be wrong and return
/// `Self`.
///
/// ```
/// use std::time::Duration;
/// use session_runtime::{Key, MemoryStore, SameSite, SessionLayer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
///     .with_cookie_name("sid")?
///     .with_same_site(SameSite::Strict)?
///     .with_idle_timeout(Duration::from_secs(30 * 60))
///     .with_absolute_timeout(Duration::from_secs(12 * 60 * 60));
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
///
/// # Around each route or around the whole router
///
/// `Router::layer(session_layer)` is the usual way to install it. It can also wrap the
/// whole `Router`, as any tower layer can; handlers see no difference. That is slightly
/// faster: axum boxes every route and its future again for each layer added with
/// `Router::layer`, and a layer around the router skips that: about 1 000 fewer CPU
/// instructions per request, so a request whose handler takes no session costs 1.10× a bare
/// handler's instructions instead of 1.23× (see `BENCHMARKS.md`). Every request then passes
/// through the layer, including those no route answers, and it stays lazy for them: no
/// store call, no cookie.
///
/// ```no_run
/// use axum::{extract::Request, routing::get, Router, ServiceExt};
/// use session_runtime::{Key, MemoryStore, SessionLayer};
/// use tower::Layer;
///
/// # async fn serve() -> std::io::Result<()> {
/// let routes = Router::new().route("/", get(|| async { "hello" }));
/// let app = SessionLayer::new(MemoryStore::new(), Key::generate()).layer(routes);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await
/// # }
/// ```
#[must_use]
#[derive(Clone)]
pub struct SessionLayer {
    /// Built once; every service the layer makes shares it.
    shared: Arc<Shared>,
    /// The store's type, for `Debug`.
    store_type: &'static str,
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("store", &self.store_type)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl SessionLayer {
    /// A layer over `store`, signing session cookies with `key`.
    ///
    /// ```
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// // A real app loads its key from its secret store: `Key::from_bytes(&secret)?`.
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate());
    /// # let _ = layer;
    /// ```
    ///
    /// The layer's type does not name the store, so the store can be chosen at run time
    /// (from configuration, say) without a generic function around the app:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    ///
    /// let shared = Arc::new(MemoryStore::new()); // kept for an admin task, say
    /// let key = Key::generate();
    /// let layer: SessionLayer = if std::env::var_os("SESSIONS_SHARED").is_some() {
    ///     SessionLayer::new(Arc::clone(&shared), key)
    /// } else {
    ///     SessionLayer::new(MemoryStore::new(), key) // another store type, the same layer type
    /// };
    /// # let _ = layer;
    /// ```
    pub fn new<S: SessionStore>(store: S, key: Key) -> Self {
        Self {
            shared: Arc::new(Shared::new(Arc::new(store), Config::new(key))),
            store_type: std::any::type_name::<S>(),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        change(&mut shared.config);
        shared.configured();
        self
    }

    /// Changes the cookie's settings, unless browsers would refuse the result: then the
    /// layer keeps its settings and the error says why.
    fn with_cookie(self, change: impl FnOnce(&mut CookieConfig)) -> Result<Self, ConfigError> {
        let mut cookie = self.shared.config.cookie.clone();
        change(&mut cookie);
        if let Some(problem) = cookie.refused_by_browsers() {
            return Err(ConfigError::RefusedByBrowsers(problem));
        }
        Ok(self.with(|c| c.cookie = cookie))
    }

    /// Keys that no longer sign but still verify, for key rotation: cookies signed by one of
    /// them are accepted and re-signed with the current key.
    ///
    /// ```
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// # let (current, retired) = (Key::generate(), Key::generate());
    /// // Cookies signed with `retired` still work, and are re-signed with `current`.
    /// let layer = SessionLayer::new(MemoryStore::new(), current).with_previous_keys([retired]);
    /// # let _ = layer;
    /// ```
    pub fn with_previous_keys<K: Borrow<Key>>(self, keys: impl IntoIterator<Item = K>) -> Self {
        self.with(|c| c.keys.previous = keys.into_iter().map(|k| k.borrow().clone()).collect())
    }

    /// What this layer's cookies are for, e.g. the app's name (default: empty). The tag of
    /// every cookie covers its name, this purpose and the session ID, so a cookie issued by
    /// another layer that shares the key, under another name or for another purpose, is
    /// refused, even where the two share a store. Set it when several apps or layers share
    /// a key (better: give each its own key). Changing it signs everyone out.
    ///
    /// ```
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// # let key = Key::generate();
    /// // The admin console and the shop share a secret; neither accepts the other's cookies.
    /// let admin = SessionLayer::new(MemoryStore::new(), key.clone()).with_purpose("admin");
    /// let shop = SessionLayer::new(MemoryStore::new(), key).with_purpose("shop");
    /// # let _ = (admin, shop);
    /// ```
    pub fn with_purpose(self, purpose: impl Into<String>) -> Self {
        let purpose = purpose.into();
        self.with(|c| c.purpose = purpose)
    }

    /// How long after the layer is built it still accepts cookies signed as 0.1 signed them
    /// (a tag over the ID alone, bound to neither the cookie's name nor a purpose), default
    /// 7 days. Such a cookie is read as if signed by a previous key and re-signed in the
    /// current format on that request, so visitors keep their sessions across the upgrade;
    /// after the window they start new ones. `Duration::ZERO` refuses them at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// // Every active session is seen within a day: one day is enough.
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
    ///     .with_legacy_cookie_window(Duration::from_secs(24 * 3600));
    /// # let _ = layer;
    /// ```
    pub fn with_legacy_cookie_window(self, window: Duration) -> Self {
        self.with(|c| c.legacy_window = window)
    }

    /// The cookie's name (default `id`). A `__Host-` name (the strictest: the cookie is
    /// bound to the exact host, over HTTPS) needs the default path `/`, no domain and
    /// `Secure`; a `__Secure-` name needs `Secure`.
    ///
    /// ```
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// # fn main() -> Result<(), session_runtime::ConfigError> {
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
    ///     .with_cookie_name("__Host-session")?;
    /// # let _ = layer;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_cookie_name(self, name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        if !valid_cookie_name(&name) {
            return Err(ConfigError::CookieName(name));
        }
        self.with_cookie(|c| c.name = name)
    }

    /// The cookie's `Path` (default `/`).
    ///
    /// ```
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// # fn main() -> Result<(), session_runtime::ConfigError> {
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
    ///     .with_cookie_path("/app")?;
    /// # let _ = layer;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_cookie_path(self, path: impl Into<String>) -> Result<Self, ConfigError> {
        let path = path.into();
        if !path.starts_with('/') || !valid_attribute_value(&path) {
            return Err(ConfigError::CookiePath(path));
        }
        self.with_cookie(|c| c.path = path)
    }

    /// The cookie's `Domain` (default none: the cookie goes to the exact host only).
    ///
    /// ```
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// # fn main() -> Result<(), session_runtime::ConfigError> {
    /// // Shared by example.com and its subdomains.
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
    ///     .with_cookie_domain("example.com")?;
    /// # let _ = layer;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_cookie_domain(self, domain: impl Into<String>) -> Result<Self, ConfigError> {
        let domain = domain.into();
        if domain.is_empty() || !valid_attribute_value(&domain) {
            return Err(ConfigError::CookieDomain(domain));
        }
        self.with_cookie(|c| c.domain = Some(domain))
    }

    /// Drops the cookie's `Secure` attribute, so that browsers also send it over plain
    /// HTTP: the session ID then travels in clear text, readable by anyone on the network.
    /// For local development without HTTPS only (browsers already accept `Secure` cookies
    /// from `http://localhost`).
    ///
    /// Browsers refuse a cookie that is not `Secure` with `SameSite=None`, `Partitioned` or
    /// a `__Secure-`/`__Host-` name, so the layer refuses those combinations too (see
    /// [Settings](SessionLayer#settings)).
    ///
    /// ```
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// # fn main() -> Result<(), session_runtime::ConfigError> {
    /// let mut layer = SessionLayer::new(MemoryStore::new(), Key::generate());
    /// if cfg!(debug_assertions) {
    ///     layer = layer.with_insecure_cookie_over_http()?; // a local http:// setup
    /// }
    /// # let _ = layer;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_insecure_cookie_over_http(self) -> Result<Self, ConfigError> {
        self.with_cookie(|c| c.secure = false)
    }

    /// Drops the cookie's `HttpOnly` attribute: any script on the page, injected ones
    /// included, can then read the session ID and send it elsewhere. Only for pages that
    /// truly need the ID in JavaScript.
    ///
    /// ```
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
    ///     .with_cookie_readable_by_scripts();
    /// # let _ = layer;
    /// ```
    pub fn with_cookie_readable_by_scripts(self) -> Self {
        self.with(|c| c.cookie.http_only = false)
    }

    /// The cookie's `SameSite` (default [`SameSite::Lax`]). [`SameSite::None`] needs the
    /// cookie to stay `Secure`.
    ///
    /// ```
    /// use session_runtime::SameSite;
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// # fn main() -> Result<(), session_runtime::ConfigError> {
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
    ///     .with_same_site(SameSite::Strict)?;
    /// # let _ = layer;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_same_site(self, same_site: SameSite) -> Result<Self, ConfigError> {
        self.with_cookie(|c| c.same_site = same_site)
    }

    /// Adds the `Partitioned` attribute (CHIPS), for an app that runs embedded in other
    /// sites (in an iframe): the browser then keeps a separate session cookie for each
    /// top-level site the app is embedded in, where it would otherwise block the cookie as
    /// a third-party one. Use it with [`SameSite::None`], without which the cookie is not
    /// sent in those cross-site frames at all. The cookie must stay `Secure`. Browsers
    /// without CHIPS support ignore the attribute.
    ///
    /// ```
    /// use session_runtime::SameSite;
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// # fn main() -> Result<(), session_runtime::ConfigError> {
    /// // An app shown in iframes on other sites.
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
    ///     .with_same_site(SameSite::None)?
    ///     .with_partitioned_cookie()?;
    /// # let _ = layer;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_partitioned_cookie(self) -> Result<Self, ConfigError> {
        self.with_cookie(|c| c.partitioned = true)
    }

    /// How long a session lives without requests (default 24 hours). Requests push the
    /// expiry out again, once per refresh interval
    /// ([`with_expiry_refresh_interval`](Self::with_expiry_refresh_interval)). At most 400
    /// days, the longest lifetime browsers give a cookie: a longer timeout means 400 days.
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
    ///     .with_idle_timeout(Duration::from_secs(30 * 60));
    /// # let _ = layer;
    /// ```
    pub fn with_idle_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.expiry.idle_timeout = timeout)
    }

    /// How long a session lives at most from its creation, however active (default: no
    /// limit). The creation time is stored with the session. A limit too long to represent
    /// as a time (`Duration::MAX`) is no limit.
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// // Signed out after 12 hours, however active.
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
    ///     .with_absolute_timeout(Duration::from_secs(12 * 3600));
    /// # let _ = layer;
    /// ```
    pub fn with_absolute_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.expiry.absolute_timeout = Some(timeout))
    }

    /// Sends a session-only cookie (no `Max-Age`), which the browser drops when it closes.
    /// The server still expires the session after the idle timeout. Sessions given their
    /// own idle timeout with `TypedSession::set_idle_timeout` still get a persistent cookie.
    ///
    /// ```
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
    ///     .with_session_only_cookie();
    /// # let _ = layer;
    /// ```
    pub fn with_session_only_cookie(self) -> Self {
        self.with(|c| c.expiry.persistent_cookie = false)
    }

    /// How often a request may refresh the session's expiry (default 60 s): a read or a
    /// write pushes the expiry out only once it has moved at least this far. Never more than
    /// a quarter of the session's idle timeout, so a request always leaves the session at
    /// least three quarters of its idle timeout to live. In between, a read writes nothing
    /// and a write keeps the stored expiry (the SQL stores then write only the changed
    /// fields' rows, not the session's); a cookie a write sends carries the `Max-Age` left.
    /// A write that changes the session's own idle timeout
    /// ([`TypedSession::set_idle_timeout`](crate::TypedSession::set_idle_timeout)), or its
    /// ID, sets the expiry afresh. `Duration::ZERO` makes every request push the expiry out.
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// // Reads push the expiry out at most every 5 minutes.
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
    ///     .with_expiry_refresh_interval(Duration::from_secs(300));
    /// # let _ = layer;
    /// ```
    pub fn with_expiry_refresh_interval(self, interval: Duration) -> Self {
        self.with(|c| c.expiry.refresh_interval = interval)
    }

    /// Answers the layer's errors in the app's format: a store that fails while loading (the
    /// extractor's rejection), a failed save, a cookie that would be too large, and a
    /// handler's own `?` on a [`SessionError`](crate::SessionError). `respond` gets the error
    /// and returns the response; the cause is still logged. Without it, a plain-text `500`
    /// or `503` (see [`SessionError::status`](crate::SessionError::status)).
    ///
    /// ```
    /// use axum::{http::{header, StatusCode}, response::IntoResponse};
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    ///
    /// // A JSON API answers its session errors in JSON too.
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate()).with_error_response(|err| {
    ///     let retry = err.status() == StatusCode::SERVICE_UNAVAILABLE;
    ///     let body = format!(r#"{{"error":"session","retry":{retry}}}"#);
    ///     (err.status(), [(header::CONTENT_TYPE, "application/json")], body).into_response()
    /// });
    /// # let _ = layer;
    /// ```
    pub fn with_error_response(
        self,
        respond: impl Fn(&crate::SessionError) -> axum::response::Response + Send + Sync + 'static,
    ) -> Self {
        let responder = crate::error::ErrorResponder(Arc::new(respond));
        self.with(|c| c.error_response = Some(responder))
    }

    /// Which responses keep their request's session changes (default
    /// [`SavePolicy::NotOnServerError`](crate::SavePolicy::NotOnServerError): a handler that answers `5xx` saves nothing, so a
    /// failure half-way does not leave half its changes). Regenerate and destroy follow the
    /// same rule. A handler that panicked saves nothing whatever the policy.
    ///
    /// ```
    /// use session_runtime::{Key, MemoryStore, SavePolicy, SessionLayer};
    /// // Validation errors (4xx) keep nothing either.
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
    ///     .with_save_policy(SavePolicy::NotOnError);
    /// # let _ = layer;
    /// ```
    pub fn with_save_policy(self, policy: crate::SavePolicy) -> Self {
        self.with(|c| c.save_policy = policy)
    }

    /// Encrypts session data at rest (default [`Encryption::Off`](crate::Encryption::Off)):
    /// with [`Encryption::On`](crate::Encryption::On), every field value is sealed with
    /// AES-256-GCM before it reaches the store, whichever store it is (your own included),
    /// and opened after a load. Each session has its own random data key, stored in its
    /// record sealed under a key derived from the layer's [`Key`]; each value is bound to
    /// its store key, so a value copied to another field or session does not open (it reads
    /// as a field that fails to decode). Per-field writes, concurrent writes to different
    /// fields, partial loads and the session index all work as before.
    ///
    /// In clear stay what stores need: session IDs, expiry, field names (store keys), the
    /// runtime's metadata (creation time, a session's own idle timeout, schema versions) and
    /// the terms of `#[session(index)]` fields (what the index looks up). Each sealed value
    /// is 28 bytes longer (nonce and tag); a session's first write stores its data key
    /// (60 bytes).
    ///
    /// **Key rotation** is [`with_previous_keys`](Self::with_previous_keys): the current
    /// key seals; a session whose data key was sealed under a previous key opens, and its
    /// data key is sealed again under the current key on that request (one small write,
    /// never the fields themselves, so it races with no write of a field). To retire a key,
    /// keep it as a previous key until every session stored before the rotation has had a
    /// request or has expired: the idle timeout (or the absolute timeout, if shorter, or the
    /// longest [`set_idle_timeout`](crate::TypedSession::set_idle_timeout) the app grants).
    /// A session whose data key no longer opens reads as one whose fields all fail to
    /// decode.
    ///
    /// With [`CookieStore`](crate::store) the whole session is already encrypted in the
    /// cookie: this only makes the cookie longer.
    ///
    /// ```
    /// use session_runtime::{Encryption, Key, MemoryStore, SessionLayer};
    /// # let (current, retired) = (Key::generate(), Key::generate());
    /// let layer = SessionLayer::new(MemoryStore::new(), current)
    ///     .with_previous_keys([retired])
    ///     .with_encryption(Encryption::On);
    /// # let _ = layer;
    /// ```
    #[cfg(feature = "encryption")]
    #[cfg_attr(docsrs, doc(cfg(feature = "encryption")))]
    pub fn with_encryption(self, encryption: crate::Encryption) -> Self {
        self.with(|c| c.encryption = encryption)
    }

    /// How stored data that does not fit the schema is treated (default
    /// [`DecodePolicy::Lenient`]).
    ///
    /// ```
    /// use session_runtime::DecodePolicy;
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    /// // A record that does not fit the schema answers 500 instead of falling back.
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
    ///     .with_decode_policy(DecodePolicy::Strict);
    /// # let _ = layer;
    /// ```
    pub fn with_decode_policy(self, policy: DecodePolicy) -> Self {
        self.with(|c| c.decode_policy = policy)
    }
}

impl SessionLayer {
    /// Lists and revokes sessions by index outside a request, with this layer's store and
    /// key: see [`Sessions`](crate::index::Sessions). Take it once the layer is configured
    /// (it keeps the settings of that moment: the key its handles derive from, the
    /// timeouts), and keep it in the app's state.
    ///
    /// ```
    /// use session_runtime::{Key, MemoryStore, SessionLayer};
    ///
    /// let layer = SessionLayer::new(MemoryStore::new(), Key::generate());
    /// let sessions = layer.sessions(); // for the admin pages
    /// # let _ = sessions;
    /// ```
    pub fn sessions(&self) -> crate::index::Sessions {
        crate::index::Sessions::new(Arc::clone(&self.shared))
    }
}

impl<I> Layer<I> for SessionLayer {
    type Service = SessionService<I>;

    fn layer(&self, inner: I) -> SessionService<I> {
        SessionService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}
