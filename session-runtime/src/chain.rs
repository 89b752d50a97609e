//! Error chains in log lines.

use std::{error::Error as StdError, fmt};

/// Shows an error and its sources, `outer: inner: innermost`, for log lines. Control
/// characters are escaped (`\n` becomes `\\n`): messages can carry stored or client data (serde's
/// "unknown variant" quotes the stored string), which must not be able to forge log lines.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Escaped(f);
        let mut shown = self.0.to_string();
        fmt::Write::write_str(&mut out, &shown)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            // Each reason once: an error that already shows its source's message (as the
            // `redis` crate's do, `broken pipe: broken pipe`) does not get it again.
            let message = e.to_string();
            if !shown.ends_with(&message) {
                fmt::write(&mut out, format_args!(": {message}"))?;
            }
            shown = message;
            cause = e.source();
        }
        Ok(())
    }
}

/// Writes through to `f`, escaping control characters.
struct Escaped<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(char::is_control) {
            self.0.write_str(&rest[..at])?;
            let control = rest[at..].chars().next().expect("found at `at`");
            write!(self.0, "{}", control.escape_default())?;
            rest = &rest[at + control.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Message(&'static str, Option<Box<Message>>);

    impl fmt::Display for Message {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Message {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn StdError + 'static))
        }
    }

    #[test]
    fn control_characters_in_any_link_are_escaped() {
        let inner = Message(
            "unknown variant `x\n2026-12-01T00:00:00Z ERROR forged\r\u{1b}[31m`",
            None,
        );
        let outer = Message("field failed\tto decode", Some(Box::new(inner)));
        let shown = Chain(&outer).to_string();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(
            shown,
            "field failed\\tto decode: unknown variant `x\\n2026-12-01T00:00:00Z ERROR forged\\r\\u{1b}[31m`"
        );
        // A link that already shows its source's message does not get it twice.
        let echo = Message(
            "the session store failed",
            Some(Box::new(Message(
                "broken pipe",
                Some(Box::new(Message("broken pipe", None))),
            ))),
        );
        assert_eq!(
            Chain(&echo).to_string(),
            "the session store failed: broken pipe"
        );
        let wraps = Message(
            "connect failed: refused",
            Some(Box::new(Message("refused", None))),
        );
        assert_eq!(Chain(&wraps).to_string(), "connect failed: refused");
        let plain = Message("plain: text, ünïcode", None);
        assert_eq!(Chain(&plain).to_string(), "plain: text, ünïcode");
    }
}
