use which::which;

/// Rebuild when bpf-linker changes: the object depends on it as much as on rustc.
fn main() {
    // aya-build passes `--cfg bpf_target_arch="..."` (the host's architecture).
    println!(
        "cargo::rustc-check-cfg=cfg(bpf_target_arch, values(\"x86_64\", \"aarch64\", \"arm\", \"riscv64\", \"powerpc64\", \"s390x\", \"mips\", \"loongarch64\"))"
    );
    if let Ok(bpf_linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", bpf_linker.display());
    }
}
