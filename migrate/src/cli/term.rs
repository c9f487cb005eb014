//! Standard error, shared by the progress bars and everything else
//! written there while they are drawn (step lines, warnings, logs): a line
//! written past the bars would be torn by their next redraw.

use std::io::Write;
use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressDrawTarget};

/// The bars on standard error (drawn only when it is a terminal).
pub(super) fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Writes a line to standard error above the bars.
pub(super) fn eline(text: &str) {
    bars().suspend(|| {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    });
}

/// Standard error for the log: each write lands above the bars.
pub(super) struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        bars().suspend(|| std::io::stderr().lock().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
