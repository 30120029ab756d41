//! Colour and terminal width: decided once at start-up, consulted by renderers.
//! Off by default, so renderers' unit tests see plain text.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::cli::ColorChoice;

static COLOR: AtomicBool = AtomicBool::new(false);
static WIDTH: AtomicUsize = AtomicUsize::new(0);

fn is_tty(fd: i32) -> bool {
    unsafe { libc::isatty(fd) == 1 }
}

/// The width of the terminal on `fd`, if it is one.
fn tty_width(fd: i32) -> Option<usize> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok =
        is_tty(fd) && unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0;
    ok.then_some(ws.ws_col as usize)
}

/// Decide colour for output on `fd` (1 = stdout): `auto` colours only a
/// terminal and honours NO_COLOR.
pub fn init(choice: ColorChoice, fd: i32) {
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_tty(fd) && std::env::var_os("NO_COLOR").is_none(),
    };
    COLOR.store(on, Ordering::Relaxed);
    WIDTH.store(tty_width(fd).unwrap_or(0), Ordering::Relaxed);
}

pub fn color() -> bool {
    COLOR.load(Ordering::Relaxed)
}

/// Terminal width, or None when not writing to a terminal (then nothing is cut).
pub fn width() -> Option<usize> {
    Some(WIDTH.load(Ordering::Relaxed)).filter(|&w| w > 0)
}

/// `line` in the SGR colour `sgr` when colouring.
fn paint(sgr: &str, line: &str) -> String {
    if color() {
        format!("\x1b[{sgr}m{line}\x1b[0m")
    } else {
        line.to_string()
    }
}

/// A table header line, bold when colouring.
pub fn header(line: &str) -> String {
    paint("1", line)
}

/// A warning line, yellow when colouring.
pub fn warning(line: &str) -> String {
    paint("33", line)
}

/// A name column of `natural` characters, narrowed to leave `rest` characters
/// for the other columns on a narrow terminal: cut `name` to fit.
pub fn name_column(name: &str, natural: usize, rest: usize) -> String {
    match width() {
        Some(w) if w < natural + rest => fit(name, w.saturating_sub(rest).max(8)),
        _ => name.to_string(),
    }
}

/// Cut `s` to at most `max` characters, marking the cut with `…`.
pub fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max || max == 0 {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_by_default() {
        assert_eq!(header("SYSCALL"), "SYSCALL");
        assert_eq!(warning("w"), "w");
        assert_eq!(width(), None);
    }

    #[test]
    fn fitting() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(fit("abc", 0), "abc");
    }
}
