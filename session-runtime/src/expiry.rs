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

    /// When a session written now expires (given its own idle timeout, if it has one), and
    /// the cookie's Max-Age for it (`None` for a session-only cookie).
    pub(crate) fn expires_at(
        &self,
        created: Option<SystemTime>,
        idle_timeout: Option<Duration>,
        now: SystemTime,
    ) -> (SystemTime, Option<Duration>) {
        let mut expires_at = now
            + idle_timeout
                .unwrap_or(self.idle_timeout)
                .min(LONGEST_LIFETIME);
        // A limit too far out to represent is no limit.
        if let Some(end) = self
            .absolute_timeout
            .and_then(|limit| created.unwrap_or(now).checked_add(limit))
        {
            expires_at = expires_at.min(end);
        }
        let persistent = self.persistent_cookie || idle_timeout.is_some();
        let max_age = persistent.then(|| expires_at.duration_since(now).unwrap_or_default());
        (expires_at, max_age)
    }
}
