//! Captures what the library logs through `tracing`, so tests can check that a warning or an
//! error was logged and that it holds no secret.
//!
//! One global subscriber (installed on first use) writes each event to the buffer of the
//! thread that emitted it, if that thread is capturing. A global subscriber avoids the race
//! between thread-scoped subscribers and `tracing`'s per-callsite interest cache when tests
//! run in parallel.

use std::{
    cell::RefCell,
    io,
    sync::{Arc, Mutex, Once},
};

use tracing_subscriber::fmt::MakeWriter;

thread_local! {
    static BUFFER: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// Log lines captured on one thread while its [`CaptureGuard`] lives.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Stops capturing on this thread when dropped.
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        BUFFER.with(|b| *b.borrow_mut() = None);
    }
}

/// The global subscriber's writer: the current thread's buffer, or nowhere.
struct ThreadWriter;

impl io::Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        BUFFER.with(|b| {
            if let Some(captured) = b.borrow().as_ref() {
                captured.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct MakeThreadWriter;

impl<'a> MakeWriter<'a> for MakeThreadWriter {
    type Writer = ThreadWriter;
    fn make_writer(&'a self) -> Self::Writer {
        ThreadWriter
    }
}

/// Captures every log event of this thread until the guard drops. Use it in a
/// current-thread runtime so the request runs on the capturing thread.
pub fn capture() -> (CaptureGuard, Captured) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(MakeThreadWriter)
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        // A test binary may have installed its own global subscriber; capture then sees
        // nothing and the test's assertions say so.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    let captured = Captured::default();
    BUFFER.with(|b| *b.borrow_mut() = Some(captured.clone()));
    (CaptureGuard(()), captured)
}
