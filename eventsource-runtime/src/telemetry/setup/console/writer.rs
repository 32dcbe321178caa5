//! The output the console renderer and the log lines share, so their lines never interleave,
//! with the process's hidden secrets (`telemetry::secrets`) written as `***`.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use crate::telemetry::secrets;

/// A `std::io::Write` shared by the console renderer and the log lines.
#[derive(Clone)]
pub(crate) struct SharedWriter(Arc<Mutex<Box<dyn Write + Send>>>);

impl SharedWriter {
    pub(crate) fn new(writer: impl Write + Send + 'static) -> Self {
        Self(Arc::new(Mutex::new(Box::new(writer))))
    }

    pub(crate) fn stderr() -> Self {
        Self::new(std::io::stderr())
    }
}

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        // Whole lines and traces come here (the formatter writes a line at once), so a
        // secret is never split between two writes.
        let shown = secrets::scrub(buf);
        // One lock for the whole buffer: a trace or a log line is never interleaved.
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(&shown)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SharedWriter {
    type Writer = SharedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
