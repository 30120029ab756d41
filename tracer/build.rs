//! Builds `tracer-ebpf` for the BPF target and leaves the object in OUT_DIR, where
//! `src/bpf` embeds it with `include_bytes_aligned!`.
//!
//! The toolchain is pinned by date in `tracer-ebpf/rust-toolchain.toml` (read
//! here and by `cargo xtask setup`, through `xtask/src/ebpf_toolchain.rs`):
//! bpf-linker links rustc's bitcode with its own LLVM (Debian's LLVM 22), and
//! rustup's undated `nightly` moves to newer LLVMs whose bitcode it rejects
//! ("Invalid record"). So the LLVM majors are compared before building, and a
//! mismatch is one clear error instead of that one.
//!
//! `TRACER_EBPF_TOOLCHAIN` overrides the pin (the set-up's Debian rustc-web
//! fallback uses it). `AYA_BUILD_SKIP=1` skips the build (clippy, docs).
use std::path::Path;

use anyhow::{bail, Context as _};

#[path = "../xtask/src/ebpf_toolchain.rs"]
mod ebpf_toolchain;

fn main() -> anyhow::Result<()> {
    let pin_file = Path::new(env!("CARGO_MANIFEST_DIR")).join(ebpf_toolchain::PIN_FILE);
    println!(
        "cargo:rerun-if-env-changed={}",
        ebpf_toolchain::OVERRIDE_VAR
    );
    println!("cargo:rerun-if-changed={}", pin_file.display());
    let toolchain = ebpf_toolchain::chosen(&pin_file).map_err(anyhow::Error::msg)?;
    if std::env::var("AYA_BUILD_SKIP").is_err() {
        check_llvm(&toolchain)?;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tracer-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
    .with_context(|| {
        format!(
            "building the eBPF programs with toolchain {toolchain} \
             (run `cargo xtask setup` if bpf-linker or rust-src is missing)"
        )
    })?;
    strip_dwarf()
}

/// Drop the object's DWARF (three quarters of it: 1.4 MB of 1.8): bpf-linker
/// needs it to write the BTF, which stays, and nothing reads it after that,
/// while it would ride along in the binary. LLVM's objcopy comes with the
/// LLVM bpf-linker uses; without it the object is embedded as it is.
fn strip_dwarf() -> anyhow::Result<()> {
    if std::env::var("AYA_BUILD_SKIP").is_ok() {
        return Ok(());
    }
    let object = Path::new(&std::env::var("OUT_DIR")?).join("tracer-ebpf");
    for tool in ["llvm-objcopy-22", "llvm-objcopy"] {
        match std::process::Command::new(tool)
            .arg("--strip-debug")
            .arg(&object)
            .status()
        {
            Ok(s) if s.success() => return Ok(()),
            Ok(s) => bail!("{tool} --strip-debug {} failed: {s}", object.display()),
            Err(_) => continue,
        }
    }
    println!("cargo:warning=llvm-objcopy not found: the eBPF object keeps its DWARF (about 1 MB)");
    Ok(())
}

/// The eBPF toolchain's LLVM must be bpf-linker's: say which two were found.
fn check_llvm(toolchain: &str) -> anyhow::Result<()> {
    let setup =
        "run `cargo xtask setup`, which installs the pinned toolchain and a matching bpf-linker";
    let rustc = ebpf_toolchain::rustc_llvm_major(toolchain)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("the eBPF toolchain {toolchain}: {setup}"))?;
    let Some(linker) = ebpf_toolchain::find_bpf_linker() else {
        bail!("bpf-linker is not installed: {setup}");
    };
    let linked = ebpf_toolchain::bpf_linker_llvm_major(&linker).map_err(anyhow::Error::msg)?;
    if rustc != linked {
        bail!(
            "the eBPF toolchain {toolchain} uses LLVM {rustc} but {} is built against LLVM {linked}; \
             they must match: {setup}",
            linker.display()
        );
    }
    Ok(())
}
