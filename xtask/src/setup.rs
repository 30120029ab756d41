//! `cargo xtask setup`: everything a fresh Debian 12 machine needs, each step
//! announced, each skipped when already done.
use std::{path::Path, process::Command};

use anyhow::{bail, Context as _, Result};

use crate::{
    ebpf_toolchain::{self, WEB_TOOLCHAIN},
    util::{sh, step, Env},
};

/// Debian packages: LLVM 22 for bpf-linker, the peers tests and benchmarks
/// compare against, the programs the strace comparisons run that are not
/// always there (python3; sort, gzip, find, tar and tzdata are), g++ for the
/// C++ program whose demangled names the uprobe tests check, what the VM
/// tests boot kernels with, and nft and ip for the `tracer tcp` retransmit
/// test (it drops segments in a network namespace of its own), gcc-multilib
/// for the 32-bit (`gcc -m32`) program of the ABI tests, and what building
/// strace's test programs from Debian's source package needs (`cargo xtask
/// strace-corpus`: dpkg-source, make and the autotools); for the profile
/// tests of programs without frame pointers, Debian's own `xz` (xz-utils),
/// `objdump` and `readelf` (binutils) and glibc's debug symbols (libc6-dbg:
/// `__libc_start_call_main`, the frame under `main`, is not in libc's
/// dynamic symbols), gzip and nodejs (`node --perf-basic-prof`: JIT frames
/// named from its perf map).
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "strace",
    "python3",
    "g++",
    "gcc-multilib",
    "bpftrace",
    "bpftool",
    "linux-perf",
    "prometheus",
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "nftables",
    "iproute2",
    "dpkg-dev",
    "make",
    "autoconf",
    "automake",
    "libtool",
    "gawk",
    "xz-utils",
    "binutils",
    "libc6-dbg",
    "gzip",
    "nodejs",
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

/// The pinned toolchain's library sources, which `-Z build-std=core` needs.
fn rust_src(toolchain: &str) -> bool {
    let Ok(out) = Command::new("rustup")
        .args(["run", toolchain, "rustc", "--print", "sysroot"])
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

fn web_toolchain_ok() -> bool {
    Path::new("/usr/lib/rustlib/src/rust/library/core").is_dir()
        && Command::new("rustup")
            .args(["run", WEB_TOOLCHAIN, "rustc", "--version"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
}

/// `tracer-ebpf/rust-toolchain.toml`, the pin.
fn pin_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(ebpf_toolchain::PIN_FILE)
}

/// The pinned channel.
pub fn pin() -> Result<String> {
    ebpf_toolchain::pinned(&pin_file()).map_err(anyhow::Error::msg)
}

/// The toolchain the eBPF build will use with `env`: the set-up's override,
/// the caller's `TRACER_EBPF_TOOLCHAIN`, or the pin.
fn chosen(env: &Env) -> Result<String> {
    match env
        .vars
        .iter()
        .find(|(k, _)| k == ebpf_toolchain::OVERRIDE_VAR)
    {
        Some((_, v)) => Ok(v.clone()),
        None => ebpf_toolchain::chosen(&pin_file()).map_err(anyhow::Error::msg),
    }
}

/// Debian's rustc-web (LLVM 22), linked into rustup: used when rustup cannot
/// provide the pinned nightly with rust-src, or its LLVM is not bpf-linker's.
fn use_web_toolchain(env: &mut Env) -> Result<()> {
    if !web_toolchain_ok() {
        apt_install(&["rustc-web", "cargo-web", "rust-web-src"])?;
        sh(Command::new("rustup").args(["toolchain", "link", WEB_TOOLCHAIN, "/usr"]))?;
    }
    if !web_toolchain_ok() {
        bail!("neither rustup's pinned nightly nor Debian's rustc-web can build the eBPF programs");
    }
    env.vars.retain(|(k, _)| k != ebpf_toolchain::OVERRIDE_VAR);
    env.vars
        .push((ebpf_toolchain::OVERRIDE_VAR.into(), WEB_TOOLCHAIN.into()));
    env.vars.push(("RUSTC_BOOTSTRAP".into(), "1".into()));
    Ok(())
}

fn build_bpf_linker(force: bool) -> Result<()> {
    eprintln!(
        "    building bpf-linker {BPF_LINKER_VERSION} against LLVM {} (about a minute)",
        ebpf_toolchain::BPF_LINKER_LLVM
    );
    let llvm = ebpf_toolchain::BPF_LINKER_LLVM;
    let mut cmd = Command::new("cargo");
    cmd.env("LLVM_PREFIX", format!("/usr/lib/llvm-{llvm}"))
        .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{llvm}"),
        ]);
    if force {
        cmd.arg("--force");
    }
    sh(&mut cmd)
}

/// The check `cargo xtask test` runs (and set-up ends with): the eBPF build
/// would use a pinned toolchain whose LLVM major is bpf-linker's. Returns the
/// line that says what was found.
pub fn check_ebpf_toolchain(env: &Env) -> Result<String> {
    let toolchain = chosen(env)?;
    if !ebpf_toolchain::is_pinned(&toolchain) {
        bail!(
            "the eBPF build would use the unpinned toolchain `{toolchain}` \
             ({} overrides the pin {}): unset it",
            ebpf_toolchain::OVERRIDE_VAR,
            pin()?
        );
    }
    let rustc = ebpf_toolchain::rustc_llvm_major(&toolchain).map_err(anyhow::Error::msg)?;
    let linker = ebpf_toolchain::find_bpf_linker().context("bpf-linker is not installed")?;
    let linked = ebpf_toolchain::bpf_linker_llvm_major(&linker).map_err(anyhow::Error::msg)?;
    if rustc != linked {
        bail!(
            "the eBPF toolchain {toolchain} uses LLVM {rustc} but {} is built against LLVM {linked}",
            linker.display()
        );
    }
    Ok(format!(
        "eBPF toolchain {toolchain}: LLVM {rustc}; bpf-linker ({}): LLVM {linked}; they match",
        linker.display()
    ))
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

    let pinned = pin()?;
    step(&format!(
        "set-up: checking the pinned eBPF toolchain {pinned} and its rust-src \
         (tracer-ebpf/rust-toolchain.toml)"
    ));
    let force_web = std::env::var_os("TRACER_SETUP_FORCE_WEB").is_some();
    if let Ok(v) = std::env::var(ebpf_toolchain::OVERRIDE_VAR) {
        eprintln!("    {}={v} overrides the pin", ebpf_toolchain::OVERRIDE_VAR);
    } else if force_web {
        use_web_toolchain(&mut env)?;
    } else if rust_src(&pinned) {
        eprintln!("    {pinned} with rust-src: present");
    } else {
        let via_rustup = sh(Command::new("rustup").args([
            "toolchain",
            "install",
            &pinned,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))
        .is_ok()
            && rust_src(&pinned);
        if !via_rustup {
            eprintln!("    rustup could not provide {pinned} with rust-src; falling back to Debian's rustc-web");
            use_web_toolchain(&mut env)?;
        }
    }

    step("set-up: checking bpf-linker and that its LLVM is the eBPF toolchain's");
    match ebpf_toolchain::find_bpf_linker() {
        Some(p) => eprintln!("    bpf-linker: {}", p.display()),
        None => build_bpf_linker(false)?,
    }
    let linker = ebpf_toolchain::find_bpf_linker().context("bpf-linker is not installed")?;
    let linked = ebpf_toolchain::bpf_linker_llvm_major(&linker).ok();
    if linked != Some(ebpf_toolchain::BPF_LINKER_LLVM) {
        eprintln!(
            "    {} is built against LLVM {}, not Debian's LLVM {}: rebuilding it",
            linker.display(),
            linked.map_or("(unknown)".to_string(), |m| m.to_string()),
            ebpf_toolchain::BPF_LINKER_LLVM
        );
        build_bpf_linker(true)?;
    }
    let toolchain = chosen(&env)?;
    let rustc = ebpf_toolchain::rustc_llvm_major(&toolchain).map_err(anyhow::Error::msg)?;
    if rustc != ebpf_toolchain::BPF_LINKER_LLVM && toolchain != WEB_TOOLCHAIN {
        eprintln!(
            "    {toolchain} uses LLVM {rustc}, bpf-linker LLVM {}: falling back to Debian's rustc-web (LLVM {})",
            ebpf_toolchain::BPF_LINKER_LLVM,
            ebpf_toolchain::BPF_LINKER_LLVM
        );
        use_web_toolchain(&mut env)?;
    }
    eprintln!("    {}", check_ebpf_toolchain(&env)?);
    let path = std::env::var("PATH").unwrap_or_default();
    let bin_dir = cargo_bin("");
    if !path.split(':').any(|p| Path::new(p) == bin_dir.as_path()) {
        env.vars
            .push(("PATH".into(), format!("{}:{path}", bin_dir.display())));
    }
    step("set-up: done");
    Ok(env)
}
