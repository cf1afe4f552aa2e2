//! Library panics on untrusted bytes become errors.
//!
//! arrow and parquet assert on some malformed input instead of returning an error. Code that
//! hands them bytes from a file wraps the call in [`catch`], so a hostile capture ends in a clean
//! error naming the file; [`install_quiet_hook`] (called first thing by the binaries) keeps the
//! default panic message of such a caught panic off stderr, and prints any other panic as one
//! line.

use std::{
    any::Any,
    cell::Cell,
    panic::{self, AssertUnwindSafe},
};

thread_local! {
    static CATCHING: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`; a panic inside it is returned as its message.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    CATCHING.with(|c| c.set(c.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get().saturating_sub(1)));
    result.map_err(|payload| message(payload.as_ref()))
}

fn message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a library panicked".to_owned());
    // One line: the library's message may hold newlines.
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Silences panics caught by [`catch`]; prints any other as one line naming `program`.
pub fn install_quiet_hook(program: &'static str) {
    panic::set_hook(Box::new(move |info| {
        if CATCHING.with(Cell::get) > 0 {
            return;
        }
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "{program}: internal error: {}{location} (please report it)",
            message(info.payload())
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message() {
        install_quiet_hook("test");
        let caught = catch(|| -> u32 { panic!("bad\npage {}", 7) });
        assert_eq!(caught, Err("bad page 7".to_owned()));
        assert_eq!(catch(|| 3), Ok(3));
        let _ = panic::take_hook();
    }
}
