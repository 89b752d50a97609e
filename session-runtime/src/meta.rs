//! The runtime's own metadata in a record: the reserved store keys, and the one conversion
//! between times and the milliseconds stores keep.
//!
//! The derive (`session-macros`) spells the reserved prefix and the namespace separator too,
//! since a proc-macro crate cannot share constants; `tests/schema.rs` ties the two.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Store keys starting with this prefix hold the runtime's metadata; schemas may not use it.
pub const RESERVED_KEY_PREFIX: &str = "__";
/// Separates a schema's namespace from its field keys (`ns.key`).
pub const NAMESPACE_SEPARATOR: char = '.';
/// A schema's stored version lives under this prefix plus its namespace or struct name.
pub const VERSION_KEY_PREFIX: &str = "__v.";
/// An indexed field's index term lives under this prefix plus the field's store key.
pub const INDEX_KEY_PREFIX: &str = "__ix.";
/// Metadata key: creation time, milliseconds since the Unix epoch.
pub const CREATED_KEY: &str = "__created";
/// Metadata key: this session's own idle timeout in milliseconds ("remember me"). Stored as
/// `__ttl`, its name since 0.1.
pub const IDLE_TIMEOUT_KEY: &str = "__ttl";
/// Metadata key: the session's data key, sealed under the layer's key, when the layer
/// encrypts field values at rest.
pub const DATA_KEY_KEY: &str = "__dk";

/// Whole milliseconds since the Unix epoch; 0 before it, `u64::MAX` past what fits.
pub(crate) fn to_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, duration_millis)
}

/// Whole milliseconds of `duration`, saturating at `u64::MAX`.
pub(crate) fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The instant `ms` milliseconds after the Unix epoch; `None` past what `SystemTime` holds
/// (stored data is not trusted to be in range).
pub(crate) fn from_millis(ms: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// Parses the runtime's own metadata numbers (versions, timestamps), which are plain ASCII
/// digits, without going through a JSON parser.
pub(crate) fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_milliseconds() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(to_millis(at), 1_700_000_000_123);
        assert_eq!(from_millis(1_700_000_000_123), Some(at));
        assert_eq!(to_millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(duration_millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn reserved_keys_share_the_prefix() {
        for key in [
            CREATED_KEY,
            IDLE_TIMEOUT_KEY,
            DATA_KEY_KEY,
            VERSION_KEY_PREFIX,
        ] {
            assert!(key.starts_with(RESERVED_KEY_PREFIX), "{key}");
        }
        assert!(VERSION_KEY_PREFIX.ends_with(NAMESPACE_SEPARATOR));
    }

    #[test]
    fn metadata_numbers_parse_strictly() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"1700000000123"), Some(1_700_000_000_123));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"-1",
            b"1.5",
            b"18446744073709551616",
            b" 1",
            b"\"1\"",
            b"1e3",
        ] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
    }
}
