//! Which toolchain builds the eBPF programs, and whether its LLVM matches
//! bpf-linker's. The pin itself lives in `tracer-ebpf/rust-toolchain.toml`.
//!
//! Shared by `xtask` and `tracer/build.rs` (included there with `#[path]`), so
//! the build and the set-up read the pin the same way. Plain std only.
#![allow(dead_code, reason = "each includer uses a part")]

use std::{path::Path, process::Command};

/// The pin file, relative to any crate directory of the workspace.
pub const PIN_FILE: &str = "../tracer-ebpf/rust-toolchain.toml";

/// Overrides the pin (the set-up's Debian rustc-web fallback sets it).
pub const OVERRIDE_VAR: &str = "TRACER_EBPF_TOOLCHAIN";

/// Debian's rustc-web linked into rustup: the fallback when rustup cannot
/// provide the pinned nightly. Pinned by Debian's package (LLVM 22).
pub const WEB_TOOLCHAIN: &str = "tracer-web";

/// The LLVM major bpf-linker is built against (Debian's `llvm-22-dev`).
pub const BPF_LINKER_LLVM: u32 = 22;

/// The `channel = "..."` of the pin file at `path`.
pub fn pinned(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the eBPF toolchain pin {}: {e}", path.display()))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .next()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| format!("{} has no `channel = \"...\"` line", path.display()))
}

/// The toolchain the eBPF build uses: `TRACER_EBPF_TOOLCHAIN` when set and not
/// empty, else the pin.
pub fn chosen(pin_file: &Path) -> Result<String, String> {
    match std::env::var(OVERRIDE_VAR) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => pinned(pin_file),
    }
}

/// A toolchain is pinned when it names a dated nightly or the Debian fallback:
/// rustup's undated `nightly` (or `stable`, `beta`) moves under our feet.
pub fn is_pinned(toolchain: &str) -> bool {
    if toolchain == WEB_TOOLCHAIN {
        return true;
    }
    let Some(date) = toolchain.strip_prefix("nightly-") else {
        return false;
    };
    let date = date.split('-').take(3).collect::<Vec<_>>();
    date.len() == 3
        && [4, 2, 2]
            .iter()
            .zip(&date)
            .all(|(n, part)| part.len() == *n && part.bytes().all(|b| b.is_ascii_digit()))
}

/// The `LLVM version:` major that `rustup run TOOLCHAIN rustc -vV` prints.
pub fn rustc_llvm_major(toolchain: &str) -> Result<u32, String> {
    let out = Command::new("rustup")
        .args(["run", toolchain, "rustc", "-vV"])
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "toolchain {toolchain} is not installed or does not run ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    llvm_major_of_version_text(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| format!("rustc of {toolchain} printed no `LLVM version:` line"))
}

fn llvm_major_of_version_text(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix("LLVM version:"))
        .and_then(|v| v.trim().split('.').next()?.parse().ok())
}

/// The LLVM major the bpf-linker binary at `path` is linked against, read from
/// the libLLVM it loads (`ldd`): `libLLVM.so.22.1` or `libLLVM-22.so`.
pub fn bpf_linker_llvm_major(path: &Path) -> Result<u32, String> {
    let out = Command::new("ldd")
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run ldd on {}: {e}", path.display()))?;
    llvm_major_of_ldd(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| {
        format!(
            "{} loads no shared libLLVM (ldd), so its LLVM version is unknown",
            path.display()
        )
    })
}

fn llvm_major_of_ldd(text: &str) -> Option<u32> {
    text.split_whitespace().find_map(|w| {
        let name = w.rsplit('/').next()?;
        let rest = name
            .strip_prefix("libLLVM.so.")
            .or_else(|| name.strip_prefix("libLLVM-"))?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

/// `bpf-linker` as the eBPF build finds it: on PATH, else in cargo's bin dir.
pub fn find_bpf_linker() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    std::env::split_paths(&path)
        .chain(cargo_home.map(|h| h.join("bin")))
        .map(|d| d.join("bpf-linker"))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins() {
        assert!(is_pinned("nightly-2026-05-01"));
        assert!(is_pinned("nightly-2026-05-01-x86_64-unknown-linux-gnu"));
        assert!(is_pinned(WEB_TOOLCHAIN));
        assert!(!is_pinned("nightly"));
        assert!(!is_pinned("stable"));
        assert!(!is_pinned("nightly-x86_64-unknown-linux-gnu"));
        assert!(!is_pinned("nightly-26-5-1"));
    }

    #[test]
    fn versions() {
        let v =
            "rustc 1.97.0-nightly (f53b654a8 2026-04-30)\nbinary: rustc\nLLVM version: 22.1.4\n";
        assert_eq!(llvm_major_of_version_text(v), Some(22));
        assert_eq!(llvm_major_of_version_text("rustc 1.0"), None);
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibLLVM.so.22.1 => /usr/lib/llvm-22/lib/libLLVM.so.22.1 (0x00007fc1)\n";
        assert_eq!(llvm_major_of_ldd(ldd), Some(22));
        assert_eq!(
            llvm_major_of_ldd("\tlibLLVM-19.so => /usr/lib/x (0x1)"),
            Some(19)
        );
        assert_eq!(llvm_major_of_ldd("\tlibc.so.6 => /lib/libc.so.6"), None);
    }

    #[test]
    fn the_workspace_pin_is_a_dated_nightly() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(PIN_FILE);
        let pin = pinned(&file).unwrap();
        assert!(is_pinned(&pin), "{pin}");
    }
}
