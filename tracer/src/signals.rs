//! Ctrl-C and SIGTERM end a run the same way.
//!
//! A run must end on the first SIGINT or SIGTERM, even one that arrives while
//! tracer is still starting (loading and attaching take a while, seconds on a
//! slow machine). A background job of a non-interactive shell starts with
//! SIGINT ignored, and the kernel discards an ignored signal that is not
//! blocked: so `main` blocks both first thing ([`hold`]), and they wait as
//! pending until [`Signals::new`] has installed the handlers and unblocks
//! them. A command that never waits for them ([`release`]) unblocks them at
//! once. `-- CMD` still starts with the mask and dispositions tracer was
//! started with (`sys/launch.rs` recorded them before `main`).
use anyhow::Result;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGINT and SIGTERM as a set.
fn ending() -> libc::sigset_t {
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
    }
    set
}

/// Block SIGINT and SIGTERM: from here on they stay pending, even where they
/// are ignored. Call first thing in `main`, before any thread starts.
pub fn hold() {
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &ending(), std::ptr::null_mut()) };
}

/// Unblock SIGINT and SIGTERM on this thread: one pending is delivered now,
/// to tracer's handler if [`Signals`] exists, or it ends tracer.
pub fn release() {
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &ending(), std::ptr::null_mut()) };
}

/// SIGINT and SIGTERM handlers, installed when this is created: create it
/// before telling the user to press Ctrl-C, so no signal falls in a gap. A
/// signal that came earlier (held since `main`) is seen by the first `recv`.
pub struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    pub fn new() -> Result<Self> {
        let signals = Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        };
        // The handlers are in place: what was held is delivered to them now.
        // (Tokio's runtime here is this thread alone; threads started later
        // inherit this mask.)
        release();
        Ok(signals)
    }

    /// Resolves on the next SIGINT or SIGTERM; returns the signal number.
    pub async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
        }
    }
}
