//! How long sessions live.

use std::time::{Duration, SystemTime};

/// The longest a session lives past its last write or refresh, however long its timeout:
/// 400 days, the longest lifetime browsers give a cookie (RFC 6265bis caps `Max-Age` and
/// `Expires` there), so the store never keeps a session its cookie cannot outlive.
pub(crate) const LONGEST_LIFETIME: Duration = Duration::from_secs(400 * 24 * 60 * 60);

/// How long sessions live: the layer's expiry settings, and the rules that turn them into a
/// session's expiry and its cookie's `Max-Age`.
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

impl ExpiryConfig {
    /// Whether a session created at `created` has reached the absolute timeout.
    pub(crate) fn past_absolute_timeout(&self, created: Option<SystemTime>) -> bool {
        match (self.absolute_timeout, created) {
            (Some(limit), Some(created)) => created
                .checked_add(limit)
                .is_some_and(|end| end <= SystemTime::now()),
            _ => false,
        }
    }

    /// Whether a read-only request should push the expiry out from `current` to `next`: only
    /// once `next` gains at least the refresh interval over the stored one. The interval is at most a
    /// quarter of the session's idle timeout, so a read always leaves the session at least
    /// three quarters of it to live, however short it is.
    pub(crate) fn refresh_due(
        &self,
        current: Option<SystemTime>,
        next: SystemTime,
        idle_timeout: Option<Duration>,
    ) -> bool {
        let idle = idle_timeout
            .unwrap_or(self.idle_timeout)
            .min(LONGEST_LIFETIME);
        let interval = self.refresh_interval.min(idle / 4);
        current.is_some_and(|current| {
            next.duration_since(current)
                .is_ok_and(|gain| gain >= interval)
        })
    }

    /// When a session was last written or refreshed: its expiry less its idle timeout.
    /// `None` when the expiry is unknown, or the absolute timeout set it.
    pub(crate) fn last_refresh(
        &self,
        created: Option<SystemTime>,
        expires_at: Option<SystemTime>,
        lifetime: Lifetime,
    ) -> Option<SystemTime> {
        let idle = lifetime.idle_timeout().unwrap_or(self.idle_timeout);
        // The last write or refresh set the expiry one idle timeout ahead, unless the
        // absolute timeout cut it short.
        let capped = |at: SystemTime| {
            self.absolute_timeout
                .zip(created)
                .and_then(|(limit, created)| created.checked_add(limit))
                .is_some_and(|end| end <= at)
        };
        expires_at
            .filter(|at| !capped(*at))
            .and_then(|at| at.checked_sub(idle.min(LONGEST_LIFETIME)))
    }

    /// When a session written now expires (given its own cookie lifetime, if it chose one),
    /// and the cookie's Max-Age for it (`None` for a session-only cookie).
    pub(crate) fn expires_at(
        &self,
        created: Option<SystemTime>,
        lifetime: Lifetime,
        now: SystemTime,
    ) -> (SystemTime, Option<Duration>) {
        let mut expires_at = now
            + lifetime
                .idle_timeout()
                .unwrap_or(self.idle_timeout)
                .min(LONGEST_LIFETIME);
        // A limit too far out to represent is no limit.
        if let Some(end) = self
            .absolute_timeout
            .and_then(|limit| created.unwrap_or(now).checked_add(limit))
        {
            expires_at = expires_at.min(end);
        }
        let persistent = match lifetime {
            Lifetime::Layer => self.persistent_cookie,
            Lifetime::IdleTimeout(_) => true,
            Lifetime::SessionOnly => false,
        };
        let max_age = persistent.then(|| expires_at.duration_since(now).unwrap_or_default());
        (expires_at, max_age)
    }
}

/// What the layer knows of a session's times, from [`TypedSession::metadata`](crate::TypedSession::metadata).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionMetadata {
    /// When the session was created; `None` while it is not stored yet.
    pub created: Option<SystemTime>,
    /// When it expires in the store, as last loaded or saved in this request; `None` for a
    /// session not stored yet, or a store that does not tell.
    pub expires_at: Option<SystemTime>,
    /// When it was last written or refreshed: its expiry less its idle timeout. `None` when
    /// the expiry is unknown, or the absolute timeout set it.
    pub last_refresh: Option<SystemTime>,
    /// Whether its cookie is session-only (dropped when the browser closes).
    pub session_only: bool,
}

/// A session's own choice for its lifetime, over the layer's: stored with the session (under
/// the idle-timeout metadata key), so it holds on later requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Lifetime {
    /// The layer's settings.
    #[default]
    Layer,
    /// Its own idle timeout, with a persistent cookie ("remember me"): stored as
    /// milliseconds.
    IdleTimeout(Duration),
    /// A session-only cookie, with the layer's idle timeout: stored as `s`.
    SessionOnly,
}

impl Lifetime {
    /// What is stored for it; `None` to remove the key.
    pub(crate) fn encode(self) -> Option<bytes::Bytes> {
        match self {
            Self::Layer => None,
            Self::IdleTimeout(timeout) => Some(bytes::Bytes::from(
                crate::meta::duration_millis(timeout).to_string(),
            )),
            Self::SessionOnly => Some(bytes::Bytes::from_static(b"s")),
        }
    }

    /// Reads what was stored; anything else is the layer's settings.
    pub(crate) fn decode(stored: Option<&[u8]>) -> Self {
        match stored {
            Some(b"s") => Self::SessionOnly,
            Some(millis) => crate::meta::parse_u64(millis).map_or(Self::Layer, |ms| {
                Self::IdleTimeout(Duration::from_millis(ms))
            }),
            None => Self::Layer,
        }
    }

    /// The session's own idle timeout, if it has one.
    pub(crate) fn idle_timeout(self) -> Option<Duration> {
        match self {
            Self::IdleTimeout(timeout) => Some(timeout),
            Self::Layer | Self::SessionOnly => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_round_trip_through_their_stored_form() {
        for lifetime in [
            Lifetime::Layer,
            Lifetime::IdleTimeout(Duration::from_millis(1_234)),
            Lifetime::SessionOnly,
        ] {
            let stored = lifetime.encode();
            assert_eq!(Lifetime::decode(stored.as_deref()), lifetime);
        }
        assert_eq!(Lifetime::decode(Some(b"garbage")), Lifetime::Layer);
    }
}
