//! Standard output that fails cleanly.
//!
//! Rust ignores SIGPIPE, so `println!` panics when the reader has gone away
//! (`meshtrace demo | head -1`) or the output cannot be written
//! (`meshtrace exposures > /dev/full`). Every line the commands print goes
//! through [`write_line`] instead (the `outln!` macro): a write failure
//! becomes an [`OutputError`] that the command returns like any other error,
//! so what it holds open (stores, nodes, temporary directories) is closed on
//! the way out. `main` then exits quietly with success after a closed pipe,
//! as other command-line tools do, and prints one line with exit status 1
//! for any other write failure.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

/// Writing to standard output failed.
#[derive(Debug)]
pub(crate) struct OutputError(pub(crate) io::Error);

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot write to the standard output: {}",
            plain_io_error(&self.0)
        )
    }
}

impl std::error::Error for OutputError {}

impl OutputError {
    /// The reader of a pipe has gone away (`| head -1`): not a failure.
    pub(crate) fn is_closed_pipe(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

/// An I/O error in plain words: the system's text without the
/// "(os error N)" suffix.
pub(crate) fn plain_io_error(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => text.as_str(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text.to_owned(),
    }
}

/// `n` with the singular or plural noun: "1 chunk", "3 chunks".
pub(crate) fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Writes one line to standard output and pushes it out, so that a closed
/// pipe or a full disk is noticed at this line.
pub(crate) fn write_line(args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(OutputError)
}

/// Writes text without a newline (a prompt) and pushes it out.
pub(crate) fn write_text(args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(OutputError)
}

/// For the few places that print outside a command's error path (the
/// crate-wide `println!`): exits at once on a write failure, quietly with
/// success after a closed pipe, else with one line and status 1.
pub(crate) fn write_line_or_exit(args: fmt::Arguments<'_>) {
    if let Err(e) = write_line(args) {
        // (Status 0 after a closed pipe.)
        std::process::exit(exit_for(&e).unwrap_or(0));
    }
}

/// What `main` does with an output failure: `None` for a closed pipe (exit
/// quietly, status 0); otherwise prints the one line and returns status 1.
fn exit_for(e: &OutputError) -> Option<i32> {
    if e.is_closed_pipe() {
        return None;
    }
    eprintln!("meshtrace: {e}");
    Some(1)
}

/// The exit of a command that failed with `e`, when `e` is an output
/// failure (see the module documentation); `None` for other errors.
pub(crate) fn exit_code_for(e: &anyhow::Error) -> Option<ExitCode> {
    let out = e.downcast_ref::<OutputError>()?;
    Some(match exit_for(out) {
        None => ExitCode::SUCCESS,
        Some(_) => ExitCode::FAILURE,
    })
}

/// `println!` that returns an [`OutputError`] instead of panicking.
macro_rules! outln {
    () => {
        $crate::output::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count(1, "chunk", "chunks"), "1 chunk");
        assert_eq!(count(0, "chunk", "chunks"), "0 chunks");
        assert_eq!(count(2, "contact", "contacts"), "2 contacts");
    }

    #[test]
    fn io_errors_read_plainly() {
        let e = io::Error::from_raw_os_error(28);
        let s = plain_io_error(&e);
        assert!(!s.contains("os error"), "{s}");
        assert!(s.starts_with("no space"), "{s}");
    }
}
