//! How long sessions live.

use std::time::Duration;

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
