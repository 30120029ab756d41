//! Can this process use bpf() and perf events? Checked up front for a clear message.
use anyhow::{bail, Result};

pub const CAP_SYS_CHROOT: u32 = 18;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// Parse the `CapEff:` line of /proc/self/status.
fn effective_caps(status: &str) -> Option<u64> {
    u64::from_str_radix(super::proc::status_field(status, "CapEff")?, 16).ok()
}

fn own_caps() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    effective_caps(&status).unwrap_or(0)
}

/// Whether this process has capability `cap` in its effective set.
pub fn has(cap: u32) -> bool {
    own_caps() & (1u64 << cap) != 0
}

/// The capabilities tracing needs that `caps` lacks: CAP_BPF and CAP_PERFMON
/// (CAP_SYS_ADMIN stands in for both, as on kernels before 5.8).
fn missing(caps: u64) -> Vec<&'static str> {
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) {
        return Vec::new();
    }
    [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|&(c, _)| !has(c))
        .map(|(_, name)| name)
        .collect()
}

/// Fails with one actionable line, naming what is missing, when the process
/// lacks the privileges to trace.
pub fn check() -> Result<()> {
    let lacking = missing(own_caps());
    if lacking.is_empty() {
        return Ok(());
    }
    bail!(
        "tracer needs root, or CAP_BPF and CAP_PERFMON, to load eBPF programs; this process \
         lacks {}: run it with sudo or grant {}",
        lacking.join(" and "),
        if lacking.len() == 1 { "it" } else { "them" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_caps() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(effective_caps(s), Some(0x1ffffffffff));
        assert!(missing(0x1ffffffffff).is_empty());
        assert!(missing((1 << CAP_BPF) | (1 << CAP_PERFMON)).is_empty());
        assert_eq!(missing(1 << CAP_BPF), ["CAP_PERFMON"]);
        assert_eq!(missing(0), ["CAP_BPF", "CAP_PERFMON"]);
        assert!(missing(1 << CAP_SYS_ADMIN).is_empty());
    }
}
