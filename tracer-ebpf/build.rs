use which::which;

/// Rebuild when bpf-linker changes: the object depends on it as much as on rustc.
fn main() {
    if let Ok(bpf_linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", bpf_linker.display());
    }
}
