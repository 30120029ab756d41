//! Can this process use bpf() and perf events? Checked up front for a clear message.
use anyhow::{bail, Result};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Parse the `CapEff:` line of /proc/self/status.
fn effective_caps(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

fn enough(caps: u64) -> bool {
    let has = |c: u32| caps & (1u64 << c) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

/// Fails with one actionable line when the process lacks the privileges to trace.
pub fn check() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match effective_caps(&status) {
        Some(caps) if enough(caps) => Ok(()),
        _ => bail!(
            "tracer needs root (or CAP_BPF and CAP_PERFMON) to load eBPF programs: run it with sudo"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_caps() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(effective_caps(s), Some(0x1ffffffffff));
        assert!(enough(0x1ffffffffff));
        assert!(!enough(0));
        assert!(enough((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!enough(1 << CAP_BPF));
    }
}
