//! The session cookie: its attributes and their validation, reading it from a request's
//! `Cookie` header, and rendering the response's `Set-Cookie`. Signing the ID is
//! [`key`](crate::key)'s job; this module only places the signed value.
//!
//! The `cookie` crate renders the attributes, once per layer. The two jobs of every request,
//! finding the cookie and writing `Set-Cookie`, are done by hand: with the crate they cost
//! about half a bare request more (figures at `request_values` and `CookieOut::header`).

use std::time::Duration;

use http::HeaderValue;

use crate::{
    key::{push_signed, signed_len, Signer},
    SessionError, SessionId,
};

/// Longest cookie the layer reads or writes: browsers cap a whole cookie (name, value and
/// attributes) at about 4 KiB and drop larger ones silently.
pub(crate) const MAX_COOKIE_LEN: usize = 4096;
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

impl From<SameSite> for cookie::SameSite {
    fn from(same_site: SameSite) -> Self {
        match same_site {
            SameSite::Strict => Self::Strict,
            SameSite::Lax => Self::Lax,
            SameSite::None => Self::None,
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
    /// The attributes after `name=value`, rendered once (by the `cookie` crate) when the
    /// layer is configured: `; HttpOnly; SameSite=Lax; Secure; Path=/`. A request's
    /// `Set-Cookie` then only appends them to the signed ID and its `Max-Age`.
    pub(crate) fn attributes(&self) -> String {
        let mut cookie = cookie::Cookie::build(("n", ""))
            .path(self.path.as_str())
            .http_only(self.http_only)
            .secure(self.secure)
            .same_site(self.same_site.into())
            .partitioned(self.partitioned)
            .build();
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.as_str());
        }
        let rendered = cookie.to_string();
        // `n=` is the placeholder pair; what follows is `; Attr; Attr=value...`.
        rendered["n=".len()..].to_owned()
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

pub(crate) fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

pub(crate) fn valid_attribute_value(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

/// The values of the cookies named `name` in one `Cookie` header (`a=1; b=2`), as RFC 6265
/// reads them: white space (space, tab) around the name and the value trimmed, and one pair
/// of double quotes around the value removed (`id="v"` is `v`; `id=""v""` is `"v"`, which
/// then fails verification).
///
/// Read by hand, as bytes, not with the `cookie` crate: `Cookie::parse` for every pair made
/// finding the session cookie in a four-cookie header take 328 ns instead of 56 ns
/// (`cargo bench --bench cookie`), about half of a whole bare axum request's time; and the
/// crate takes text, where other cookies in the header may hold bytes that are not (a
/// site's scripts can set UTF-8 values, which are not valid header text), and they must not
/// hide the session cookie.
pub(crate) fn request_values<'a>(
    header: &'a [u8],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    header.split(|&b| b == b';').filter_map(move |pair| {
        let at = memchr::memchr(b'=', pair)?;
        if trim_wsp(&pair[..at]) != name.as_bytes() {
            return None;
        }
        Some(unquote(trim_wsp(&pair[at + 1..])))
    })
}

/// Whether `value` is all RFC 6265 `cookie-octet`s: printable ASCII but space, `"`, `,`, `;`
/// and `\\`, so it cannot end the value or start an attribute.
fn is_cookie_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))
}

/// `bytes` without the spaces and tabs around them (RFC 6265's `WSP`).
fn trim_wsp(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// `value` without one pair of surrounding double quotes (RFC 6265's `DQUOTE *cookie-octet
/// DQUOTE`); a value quoted on one side only is left as it is.
fn unquote(value: &[u8]) -> &[u8] {
    value
        .strip_prefix(b"\"")
        .and_then(|inner| inner.strip_suffix(b"\""))
        .unwrap_or(value)
}

/// The cookie the response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CookieOut {
    Set {
        id: SessionId,
        max_age: Option<Duration>,
        /// The tag, when `id` was already signed with the current key.
        tag: Option<[u8; 32]>,
    },
    Remove,
}

impl CookieOut {
    /// The `Set-Cookie` header for this cookie: `name=<signed id>; Max-Age=..` and the
    /// attributes rendered once by [`CookieConfig::attributes`]. Assembled by hand at its
    /// exact size: building and rendering the whole cookie with the `cookie` crate on every
    /// response took 192 ns against 27 ns (`cargo bench --bench cookie`).
    pub(crate) fn header(
        &self,
        name: &str,
        attributes: &str,
        signer: &Signer,
    ) -> Result<HeaderValue, SessionError> {
        let text = match self {
            CookieOut::Set { id, max_age, tag } => {
                // A store may choose its own IDs: one with `;` or spaces would put
                // attributes of its choosing into the header.
                if !is_cookie_value(id.as_str()) {
                    return Err(SessionError::InvalidStoreId);
                }
                let tag = match tag {
                    Some(tag) => *tag,
                    None => signer.tag(id.as_str()),
                };
                // Built at its exact size: the header value then takes the buffer over
                // without copying or allocating again.
                let len = set_cookie_len(name, id, *max_age, attributes);
                let max_age = max_age.map(|age| age.as_secs());
                let mut text = String::with_capacity(len);
                text.push_str(name);
                text.push('=');
                push_signed(&mut text, id.as_str(), &tag);
                if let Some(age) = max_age {
                    text.push_str(MAX_AGE);
                    push_decimal(&mut text, age);
                }
                text.push_str(attributes);
                debug_assert_eq!(text.len(), len);
                text
            }
            CookieOut::Remove => {
                format!("{name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{attributes}")
            }
        };
        if text.len() > MAX_COOKIE_LEN {
            return Err(SessionError::CookieTooLarge {
                size: text.len(),
                limit: MAX_COOKIE_LEN,
            });
        }
        // Names and attributes are validated and our IDs are base64url; only an ID chosen by
        // a store can fail here.
        HeaderValue::try_from(text).map_err(|_| SessionError::InvalidStoreId)
    }
}

const MAX_AGE: &str = "; Max-Age=";

/// The length of the `Set-Cookie` header that sends `id`, before it is signed: a save can
/// tell that the cookie it needs is too large before anything depends on it.
pub(crate) fn set_cookie_len(
    name: &str,
    id: &SessionId,
    max_age: Option<std::time::Duration>,
    attributes: &str,
) -> usize {
    name.len()
        + 1
        + signed_len(id.as_str())
        + max_age.map_or(0, |age| MAX_AGE.len() + decimal_len(age.as_secs()))
        + attributes.len()
}

/// The number of decimal digits of `n`.
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, n: u64) {
    use std::fmt::Write as _;
    // Writing to a `String` cannot fail.
    let _ = write!(out, "{n}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(header: &'a str, name: &'a str) -> Vec<&'a [u8]> {
        request_values(header.as_bytes(), name).collect()
    }

    #[test]
    fn request_values_find_the_named_cookie_only() {
        assert_eq!(values("id=abc", "id"), [b"abc"]);
        assert_eq!(values("a=1; id=abc; b=2", "id"), [b"abc"]);
        assert_eq!(values("a=1;id=abc ;b=2", "id"), [b"abc"]);
        assert_eq!(values("\tid=\"abc\"", "id"), [b"abc"]);
        assert_eq!(values(" id = abc \t", "id"), [b"abc"]);
        assert_eq!(values("id=a; id=b", "id"), [b"a", b"b"]);
        assert_eq!(values("id=", "id"), [b""]);
        // Other names, including ones that start with or end in the name, do not count.
        assert!(values("idx=1; xid=2; id; i=3; ID=4", "id").is_empty());
        assert!(values("", "id").is_empty());
        // A value keeps its inner `=`; RFC 6265 trims white space around name and value.
        assert_eq!(values("id=a=b", "id"), [b"a=b"]);
        assert_eq!(values("id= a", "id"), [b"a"]);
        assert_eq!(values("id =5", "id"), [b"5"]);
    }

    #[test]
    fn request_values_remove_one_pair_of_quotes_only() {
        assert_eq!(values("id=\"abc\"", "id"), [b"abc"]);
        assert_eq!(values("id=\"\"abc\"\"", "id"), [b"\"abc\""]);
        assert_eq!(values("id=\"abc", "id"), [b"\"abc"]);
        assert_eq!(values("id=abc\"", "id"), [b"abc\""]);
        assert_eq!(values("id=\"", "id"), [b"\""]);
        assert_eq!(values("id=\"\"", "id"), [b""]);
    }

    #[test]
    fn request_values_read_past_bytes_that_are_not_text() {
        let header = b"a=\xff\xfe; id=abc; b=caf\xc3\xa9";
        let found: Vec<&[u8]> = request_values(header, "id").collect();
        assert_eq!(found, [b"abc"]);
    }

    #[test]
    fn attributes_render_every_setting() {
        let mut config = CookieConfig::default();
        assert_eq!(
            config.attributes(),
            "; HttpOnly; SameSite=Lax; Secure; Path=/"
        );
        config.path = "/app".into();
        config.domain = Some("example.com".into());
        config.http_only = false;
        config.secure = false;
        config.same_site = SameSite::Strict;
        assert_eq!(
            config.attributes(),
            "; SameSite=Strict; Path=/app; Domain=example.com"
        );
        config.secure = true;
        config.same_site = SameSite::None;
        config.partitioned = true;
        assert_eq!(
            config.attributes(),
            "; SameSite=None; Partitioned; Secure; Path=/app; Domain=example.com"
        );
    }
    #[test]
    fn decimals_are_written_at_their_counted_length() {
        for n in [0, 1, 9, 10, 99, 100, 86_400, 1_000_000_007, u64::MAX] {
            let mut out = String::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string());
            assert_eq!(decimal_len(n), out.len(), "{n}");
        }
    }
}
