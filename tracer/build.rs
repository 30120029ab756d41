//! Builds `tracer-ebpf` for the BPF target and leaves the object in OUT_DIR, where
//! `src/bpf` embeds it with `include_bytes_aligned!`.
//!
//! `TRACER_EBPF_TOOLCHAIN` names the rustup toolchain to build it with (default
//! `nightly`); `cargo xtask setup` links Debian's rustc-web there when rustup's
//! nightly has no `rust-src`. `AYA_BUILD_SKIP=1` skips the build (clippy, docs).
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=TRACER_EBPF_TOOLCHAIN");
    let toolchain = std::env::var("TRACER_EBPF_TOOLCHAIN").ok();
    let toolchain = match toolchain.as_deref() {
        None | Some("") | Some("nightly") => aya_build::Toolchain::Nightly,
        Some(other) => aya_build::Toolchain::Custom(other),
    };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tracer-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        toolchain,
    )
    .context(
        "building the eBPF programs (run `cargo xtask setup` if bpf-linker or rust-src is missing)",
    )
}
