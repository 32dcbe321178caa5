//! Shared text (`Arc<str>`) written once: into this thread's scratch buffer, then copied
//! into the shared allocation. Writing into a fresh `String` would allocate, grow and
//! shrink it, and then copy it into the `Arc` all the same.

use std::cell::Cell;
use std::fmt::{self, Display, Write as _};
use std::sync::Arc;

/// Text up to this size keeps the scratch buffer it was written in for the next; a larger
/// text's buffer is freed, so a thread never holds more than this.
const SCRATCH_KEPT: usize = 64 * 1024;

thread_local! {
    /// Where [`write_shared`] writes. Taken while in use, so a writer that itself writes
    /// shared text (a `Serialize` impl serializing a payload, say) gets a buffer of its own.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The text `write` writes (UTF-8: serde_json's output, or formatting's), shared.
pub(crate) fn write_shared<E>(
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<Arc<str>, E> {
    let mut buffer = SCRATCH.take();
    buffer.clear();
    let written = write(&mut buffer);
    // Both writers write UTF-8; the check is one pass over the bytes.
    let shared = written.map(|()| Arc::from(std::str::from_utf8(&buffer).unwrap_or_default()));
    if buffer.capacity() <= SCRATCH_KEPT {
        SCRATCH.set(buffer);
    }
    shared
}

/// `value` as `ToString` writes it, shared. A `Display` impl that fails (which makes
/// `ToString` panic) gives what it wrote before failing.
pub(crate) fn display_shared<T: Display + ?Sized>(value: &T) -> Arc<str> {
    let Ok(text) = write_shared(|buffer| {
        // Appending to a `Vec` fails only when the `Display` impl does.
        let _ = write!(Utf8(buffer), "{value}");
        Ok::<(), std::convert::Infallible>(())
    });
    text
}

/// Formatting's text appended to a byte buffer: UTF-8, as `fmt::Write` writes only `str`s
/// (`io::Write` would go through an adapter that keeps an error).
struct Utf8<'a>(&'a mut Vec<u8>);

impl fmt::Write for Utf8<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}
