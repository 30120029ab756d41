//! Messages the BPF programs log with aya-log-ebpf, shown through env_logger.
//!
//! Off by default and free when off: the programs' log level is a read-only
//! global written before load (0 = off, so the verifier removes the log code),
//! the log ring is shrunk to one page, and nothing reads it. With `-vv`
//! (debug) or a RUST_LOG that enables debug for some target, the level is
//! raised and a task forwards the records to the `log` crate (target
//! `tracer_ebpf::...`, so `RUST_LOG=tracer_ebpf=debug` selects just them).
use anyhow::Result;
use tokio::io::unix::AsyncFd;

use super::Object;

/// The level compiled into the programs: aya_log_common's numbering (0 off,
/// 1 error ... 5 trace), from the most verbose level the logger lets through;
/// 0 when nobody reads the records.
pub fn bpf_level() -> u8 {
    if wanted() {
        log::max_level() as usize as u8
    } else {
        0
    }
}

/// Whether the programs' messages (debug level: they only report trouble such
/// as a full ring buffer) are wanted at all.
pub fn wanted() -> bool {
    log::max_level() >= log::LevelFilter::Debug
}

/// Start forwarding the programs' log records, if wanted. The returned handle
/// ends with the runtime; call `flush` on the result at the end for the last ones.
pub fn start(obj: &mut Object) -> Result<Option<Forwarder>> {
    if !wanted() {
        return Ok(None);
    }
    match aya_log::EbpfLogger::init(obj.ebpf()) {
        Ok(logger) => {
            // SAFETY: the logger owns its ring buffer fd for as long as the AsyncFd lives.
            let fd =
                unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) }?;
            Ok(Some(Forwarder { fd }))
        }
        Err(e) => {
            log::warn!("BPF program logs unavailable: {e}");
            Ok(None)
        }
    }
}

pub struct Forwarder {
    fd: AsyncFd<aya_log::EbpfLogger<&'static dyn log::Log>>,
}

impl Forwarder {
    /// Forward records as they come; never returns unless the ring fails.
    pub async fn run(&mut self) {
        loop {
            let Ok(mut guard) = self.fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    }

    pub fn flush(&mut self) {
        self.fd.get_mut().flush();
    }
}
