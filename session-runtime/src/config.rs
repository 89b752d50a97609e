//! Cookie and expiry settings of a [`SessionLayer`](crate::SessionLayer).

use std::time::Duration;

use crate::{key::Keys, DecodePolicy, Key};

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// Sent only on requests from the same site.
    Strict,
    /// Also sent on top-level navigations from other sites (following a link). The default.
    #[default]
    Lax,
    /// Sent on every request, cross-site ones included. Requires `Secure`.
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

/// Everything the layer needs per request, built once and shared.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) keys: Keys,
    pub(crate) cookie: CookieConfig,
    pub(crate) expiry: ExpiryConfig,
    pub(crate) decode_policy: DecodePolicy,
}

impl Config {
    pub(crate) fn new(key: Key) -> Self {
        Self {
            keys: Keys {
                current: key,
                previous: Vec::new(),
            },
            cookie: CookieConfig::default(),
            expiry: ExpiryConfig::default(),
            decode_policy: DecodePolicy::default(),
        }
    }
}

/// The session cookie's attributes.
#[derive(Debug, Clone)]
pub(crate) struct CookieConfig {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    pub(crate) partitioned: bool,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "id".to_owned(),
            path: "/".to_owned(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            partitioned: false,
        }
    }
}

impl CookieConfig {
    /// The attributes after `name=value`, rendered once: `; Path=/; Domain=..; HttpOnly; ..`.
    pub(crate) fn attributes(&self) -> String {
        let mut out = format!("; Path={}", self.path);
        if let Some(domain) = &self.domain {
            out.push_str("; Domain=");
            out.push_str(domain);
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if self.secure {
            out.push_str("; Secure");
        }
        out.push_str("; SameSite=");
        out.push_str(self.same_site.as_str());
        if self.partitioned {
            out.push_str("; Partitioned");
        }
        out
    }

    /// Why browsers would refuse a cookie with these attributes, if they would: the session
    /// would then silently never stick.
    pub(crate) fn refused_by_browsers(&self) -> Option<String> {
        let name = &self.name;
        let prefixed = |prefix: &str| {
            name.as_bytes()
                .get(..prefix.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
        };
        if self.same_site == SameSite::None && !self.secure {
            return Some(
                "a cookie with `SameSite=None` must be `Secure`; drop `with_insecure_cookie_over_http()` or \
                 choose another `SameSite`"
                    .to_owned(),
            );
        }
        if self.partitioned && !self.secure {
            return Some(
                "a `Partitioned` cookie must be `Secure`; drop `with_insecure_cookie_over_http()`"
                    .to_owned(),
            );
        }
        if prefixed("__Host-") && (!self.secure || self.path != "/" || self.domain.is_some()) {
            return Some(format!(
                "a cookie named {name:?} (`__Host-` prefix) must be `Secure`, on path `/` and \
                 without a domain"
            ));
        }
        if prefixed("__Secure-") && !self.secure {
            return Some(format!(
                "a cookie named {name:?} (`__Secure-` prefix) must be `Secure`"
            ));
        }
        None
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
        }
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

pub(crate) fn valid_attribute_value(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

/// How long sessions live.
#[derive(Debug, Clone)]
pub(crate) struct ExpiryConfig {
    pub(crate) idle_timeout: Duration,
    pub(crate) absolute_timeout: Option<Duration>,
    pub(crate) persistent_cookie: bool,
    pub(crate) refresh_interval: Duration,
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(24 * 60 * 60),
            absolute_timeout: None,
            persistent_cookie: true,
            refresh_interval: Duration::from_secs(60),
        }
    }
}
