//! Standard output for every command. A reader that goes away (`drover logs -f web | head
//! -1`) ends the process quietly with exit code 0, as for other Unix tools, instead of the
//! panic `println!` gives on a closed pipe.

use std::fmt;
use std::io::{self, Write};

/// `print!` through [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}

/// `println!` through [`write`].
macro_rules! outln {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to standard output and flushes. A closed pipe exits the process with 0; any other
/// failure to write is reported on standard error and exits with 1.
pub fn write(args: fmt::Arguments<'_>) {
    if let Err(e) = write_to(&mut io::stdout().lock(), args) {
        if is_closed_pipe(&e) {
            std::process::exit(0);
        }
        let _ = writeln!(io::stderr(), "drover: writing to standard output: {e}");
        std::process::exit(1);
    }
}

fn write_to(w: &mut impl Write, args: fmt::Arguments<'_>) -> io::Result<()> {
    w.write_fmt(args)?;
    w.flush()
}

/// Whether a write failed because nobody reads the other end any more.
fn is_closed_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_told_apart_from_other_write_errors() {
        // A real pipe whose reader is gone (the Rust runtime ignores SIGPIPE, so the write
        // fails with EPIPE, as stdout does under `| head`).
        let (reader, mut writer) = io::pipe().expect("pipe");
        drop(reader);
        let e = write_to(&mut writer, format_args!("line {}\n", 1)).expect_err("closed pipe");
        assert!(is_closed_pipe(&e), "{e:?}");

        let full = io::Error::from(io::ErrorKind::StorageFull);
        assert!(!is_closed_pipe(&full));
        let mut out = Vec::new();
        write_to(&mut out, format_args!("a {}\n", "b")).expect("vec");
        assert_eq!(out, b"a b\n");
    }
}
