//! `cargo xtask setup`: everything a fresh Debian 12 machine needs, each step
//! announced, each skipped when already done.
use std::{path::Path, process::Command};

use anyhow::{bail, Context as _, Result};

use crate::util::{sh, step, Env};

/// Debian packages: LLVM 22 for bpf-linker, the peers tests and benchmarks
/// compare against, the programs the strace comparisons run that are not
/// always there (python3; sort, gzip, find, tar and tzdata are), and what the
/// VM tests boot kernels with.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "strace",
    "python3",
    "bpftrace",
    "bpftool",
    "linux-perf",
    "qemu-system-x86",
    "busybox-static",
    "cpio",
];

const BPF_LINKER_VERSION: &str = "0.13.0";

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn apt_install(pkgs: &[&str]) -> Result<()> {
    sh(Command::new("apt-get").args(["update", "-q"]))?;
    sh(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(pkgs))
}

fn cargo_bin(name: &str) -> std::path::PathBuf {
    let home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(&std::env::var("HOME").unwrap_or("/root".into())).join(".cargo")
        });
    home.join("bin").join(name)
}

fn bpf_linker_ok() -> bool {
    Command::new(cargo_bin("bpf-linker"))
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The nightly toolchain's library sources, which `-Z build-std=core` needs.
fn nightly_rust_src() -> bool {
    let Ok(out) = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
    else {
        return false;
    };
    if !out.status.success() {
        return false;
    }
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib/src/rust/library/core")
        .is_dir()
}

/// Debian's rustc-web, linked into rustup as `tracer-web`: the fallback when
/// rustup cannot fetch rust-src.
const WEB_TOOLCHAIN: &str = "tracer-web";

fn web_toolchain_ok() -> bool {
    Path::new("/usr/lib/rustlib/src/rust/library/core").is_dir()
        && Command::new("rustup")
            .args(["run", WEB_TOOLCHAIN, "rustc", "--version"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
}

pub fn run() -> Result<Env> {
    let mut env = Env::default();
    step("set-up: checking Debian packages");
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        eprintln!("    all present: {}", APT_PACKAGES.join(" "));
    } else {
        eprintln!("    installing: {}", missing.join(" "));
        apt_install(&missing).context("installing Debian packages (are you root?)")?;
    }

    step("set-up: checking the nightly toolchain and rust-src (for -Z build-std=core)");
    let force_web = std::env::var_os("TRACER_SETUP_FORCE_WEB").is_some();
    if !force_web && nightly_rust_src() {
        eprintln!("    nightly with rust-src: present");
    } else {
        let via_rustup = !force_web
            && sh(Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))
            .is_ok()
            && nightly_rust_src();
        if !via_rustup {
            eprintln!(
                "    rustup could not provide nightly rust-src; falling back to Debian's rustc-web"
            );
            if !web_toolchain_ok() {
                apt_install(&["rustc-web", "cargo-web", "rust-web-src"])?;
                sh(Command::new("rustup").args(["toolchain", "link", WEB_TOOLCHAIN, "/usr"]))?;
            }
            if !web_toolchain_ok() {
                bail!(
                    "neither rustup's nightly nor Debian's rustc-web can build the eBPF programs"
                );
            }
            env.vars
                .push(("TRACER_EBPF_TOOLCHAIN".into(), WEB_TOOLCHAIN.into()));
            env.vars.push(("RUSTC_BOOTSTRAP".into(), "1".into()));
        }
    }

    step("set-up: checking bpf-linker");
    if bpf_linker_ok() {
        eprintln!("    bpf-linker: present");
    } else {
        eprintln!("    building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about a minute)");
        sh(Command::new("cargo")
            .env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                "llvm-22",
            ]))?;
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let bin_dir = cargo_bin("");
    if !path.split(':').any(|p| Path::new(p) == bin_dir.as_path()) {
        env.vars
            .push(("PATH".into(), format!("{}:{path}", bin_dir.display())));
    }
    step("set-up: done");
    Ok(env)
}
