//! The settings a [`SessionLayer`](crate::SessionLayer) is built from, and the error of an
//! invalid one.

use std::time::Duration;

use crate::{
    error::ErrorResponder, expiry::ExpiryConfig, key::Keys, session_cookie::CookieConfig,
    DecodePolicy, Key,
};

/// How long after a layer is built it still reads cookies signed in 0.1's format (bound to
/// neither name nor purpose), by default: a week.
pub(crate) const LEGACY_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Everything the layer needs per request, built once and shared.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) keys: Keys,
    /// What the layer's cookies are for (an app's name): bound into every tag.
    pub(crate) purpose: String,
    /// How long 0.1-format cookies are still read, from the layer's construction.
    pub(crate) legacy_window: Duration,
    pub(crate) cookie: CookieConfig,
    pub(crate) expiry: ExpiryConfig,
    pub(crate) decode_policy: DecodePolicy,
    /// The app's own error responses, if it gave one.
    pub(crate) error_response: Option<ErrorResponder>,
    pub(crate) save_policy: SavePolicy,
    /// Whether field values are sealed before they reach the store.
    #[cfg(feature = "encryption")]
    pub(crate) encryption: crate::Encryption,
}

/// Which responses keep the session changes their request made; chosen with
/// [`SessionLayer::with_save_policy`](crate::SessionLayer::with_save_policy).
///
/// A request whose response the policy refuses saves nothing it had not saved: no field
/// written or removed, no regenerate, no destroy, no new session, no cookie (a cookie an
/// explicit `save()` decided still goes out). Whatever the policy, a request whose handler
/// panicked saves nothing either.
///
/// A cancelled request saves nothing: a timeout outside the session layer drops the save
/// with the request, and one inside it answers `408 Request Timeout` (tower-http's
/// `TimeoutLayer`), which every policy but [`Always`](Self::Always) refuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SavePolicy {
    /// Save whatever the handler answered.
    Always,
    /// Save unless the response is a server error (`5xx`), as Django does: a handler that
    /// failed half-way does not leave half its changes; nor a `408 Request Timeout`, the
    /// answer for a handler a timeout cancelled. The default.
    #[default]
    NotOnServerError,
    /// Save only on success: not on a client error (`4xx`) either.
    NotOnError,
}

impl SavePolicy {
    /// Whether a response with `status` keeps its request's changes.
    pub(crate) fn saves(self, status: http::StatusCode) -> bool {
        match self {
            Self::Always => true,
            Self::NotOnServerError => {
                !status.is_server_error() && status != http::StatusCode::REQUEST_TIMEOUT
            }
            Self::NotOnError => !status.is_server_error() && !status.is_client_error(),
        }
    }
}

impl Config {
    pub(crate) fn new(key: Key) -> Self {
        Self {
            keys: Keys {
                current: key,
                previous: Vec::new(),
            },
            purpose: String::new(),
            legacy_window: LEGACY_WINDOW,
            cookie: CookieConfig::default(),
            expiry: ExpiryConfig::default(),
            decode_policy: DecodePolicy::default(),
            error_response: None,
            save_policy: SavePolicy::default(),
            #[cfg(feature = "encryption")]
            encryption: crate::Encryption::default(),
        }
    }
}

/// An invalid layer setting.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cookie name is empty or has characters a cookie name cannot have.
    CookieName(String),
    /// The cookie path does not start with `/` or has `;` or control characters.
    CookiePath(String),
    /// The cookie domain is empty or has `;`, spaces or control characters.
    CookieDomain(String),
    /// Browsers would refuse the cookie these settings make, so no session would stick;
    /// the message names the setting to change.
    RefusedByBrowsers(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CookieName(n) => write!(
                f,
                "invalid session cookie name {n:?}: use letters, digits and `-_.`"
            ),
            Self::CookiePath(p) => write!(
                f,
                "invalid session cookie path {p:?}: it must start with `/` and have no `;`"
            ),
            Self::CookieDomain(d) => write!(f, "invalid session cookie domain {d:?}"),
            Self::RefusedByBrowsers(why) => {
                write!(f, "browsers would refuse the session cookie: {why}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}
