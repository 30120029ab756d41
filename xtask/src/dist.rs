//! `cargo xtask dist`: one static x86_64 binary (musl, the eBPF bytecode
//! embedded, symbols stripped) in target/dist/tracer, and a .deb around it
//! with the man page and the shell completions in their standard places.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{
    debian,
    util::{self, sh, step, Env},
};

const TARGET: &str = "x86_64-unknown-linux-musl";

/// What `dist` wrote.
pub struct Dist {
    pub binary: PathBuf,
    pub deb: PathBuf,
}

/// Build the static binary and the .deb.
pub fn run(env: &Env) -> Result<Dist> {
    step(&format!("the {TARGET} target of the host toolchain"));
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup")?;
    if !String::from_utf8_lossy(&installed.stdout).contains(TARGET) {
        sh(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    step("building the static binary (release, musl, stripped)");
    util::cargo(
        env,
        &[
            "build",
            "--release",
            "--locked",
            "-p",
            "tracer",
            "--target",
            TARGET,
            "--config",
            "profile.release.strip=\"symbols\"",
        ],
    )?;
    let dist = util::target_dir().join("dist");
    std::fs::create_dir_all(&dist)?;
    let binary = dist.join("tracer");
    std::fs::copy(
        util::target_dir().join(TARGET).join("release/tracer"),
        &binary,
    )?;
    let size = std::fs::metadata(&binary)?.len();
    eprintln!(
        "    {}: {:.1} MB, static",
        binary.display(),
        size as f64 / 1e6
    );
    let deb = deb(&binary, &dist)?;
    eprintln!("    {}", deb.display());
    Ok(Dist { binary, deb })
}

/// The output of `tracer ARGS` (the man page, a completion script).
fn generated(binary: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new(binary).args(args).output()?;
    if !out.status.success() {
        bail!("tracer {} failed", args.join(" "));
    }
    Ok(out.stdout)
}

/// tracer_VERSION_amd64.deb: /usr/bin/tracer, its man page, the bash, zsh and
/// fish completions. No dependencies: the binary is static.
fn deb(binary: &Path, dist: &Path) -> Result<PathBuf> {
    step("building the .deb");
    let version = env!("CARGO_PKG_VERSION");
    let stage = dist.join("deb");
    let _ = std::fs::remove_dir_all(&stage);
    let put = |path: &str, bytes: &[u8]| -> Result<()> {
        let to = stage.join(path);
        std::fs::create_dir_all(to.parent().unwrap())?;
        std::fs::write(&to, bytes).with_context(|| format!("writing {}", to.display()))
    };
    put("usr/bin/tracer", &std::fs::read(binary)?)?;
    put("usr/share/man/man1/tracer.1", &generated(binary, &["man"])?)?;
    sh(Command::new("gzip")
        .arg("-9n")
        .arg(stage.join("usr/share/man/man1/tracer.1")))?;
    put(
        "usr/share/bash-completion/completions/tracer",
        &generated(binary, &["completions", "bash"])?,
    )?;
    put(
        "usr/share/zsh/vendor-completions/_tracer",
        &generated(binary, &["completions", "zsh"])?,
    )?;
    put(
        "usr/share/fish/vendor_completions.d/tracer.fish",
        &generated(binary, &["completions", "fish"])?,
    )?;
    let installed_kb = std::fs::metadata(binary)?.len() / 1024 + 8;
    put(
        "DEBIAN/control",
        format!(
            "Package: tracer\n\
             Version: {version}\n\
             Architecture: amd64\n\
             Maintainer: tracer developers <tracer@localhost>\n\
             Installed-Size: {installed_kb}\n\
             Section: devel\n\
             Priority: optional\n\
             Description: low-overhead Linux tracing with eBPF\n \
             Counts system calls, kernel and user functions and tracepoint events in\n \
             the kernel, and prints each syscall or exec as it happens, like strace,\n \
             BCC's tools and bpftrace one-liners. One static binary, the eBPF\n \
             programs embedded; needs root (or CAP_BPF and CAP_PERFMON).\n"
        )
        .as_bytes(),
    )?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        stage.join("usr/bin/tracer"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    let deb = dist.join(format!("tracer_{version}_amd64.deb"));
    // xz (dpkg-deb's default, pinned): Debian 11's dpkg cannot read zstd.
    sh(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&stage)
        .arg(&deb))?;
    Ok(deb)
}

/// The checks `cargo xtask test` runs on what `dist` wrote: the static binary
/// counts syscalls from a root holding nothing but itself, /proc and /sys; the
/// .deb is in a format Debian 11's dpkg reads, installs into a scratch dpkg
/// root with its files where they belong, and the installed binary runs; then
/// the same with Debian 11's and 12's own dpkg and apt (see `debian`).
pub fn check(d: &Dist) -> Result<()> {
    let root = util::target_dir().join("dist-check");
    let _ = std::fs::remove_dir_all(&root);
    // An empty root: the binary, /proc and /sys (bind-mounted in a private
    // mount namespace, so nothing outside sees them).
    let empty = root.join("empty");
    for d in ["bin", "proc", "sys"] {
        std::fs::create_dir_all(empty.join(d))?;
    }
    std::fs::copy(&d.binary, empty.join("bin/tracer"))?;
    let e = empty.display();
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(format!(
            "mount -t proc proc {e}/proc && mount --rbind /sys {e}/sys && \
             chroot {e} /bin/tracer syscalls -d 0.3 && \
             chroot {e} /bin/tracer syscalls -- /bin/tracer list syscalls getpid"
        ))
        .output()
        .context("running unshare")?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    if !out.status.success() || !stdout.contains("SYSCALL") || !stderr.contains("execve") {
        bail!(
            "the static binary in an empty root: {}\n{stdout}{stderr}",
            out.status
        );
    }
    eprintln!(
        "    the static binary counted syscalls in a root holding only itself, /proc and /sys"
    );
    check_format(&d.deb)?;
    eprintln!("    the .deb is format 2.0 with control.tar.xz and data.tar.xz (no zstd)");
    // A scratch dpkg database: dpkg --root installs there, as apt would on a machine.
    let scratch = root.join("dpkg");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(scratch.join(d))?;
    }
    std::fs::write(scratch.join("var/lib/dpkg/status"), "")?;
    sh(Command::new("dpkg")
        .arg(format!("--root={}", scratch.display()))
        .args(["--force-not-root", "--force-script-chrootless", "-i"])
        .arg(&d.deb))?;
    for f in debian::FILES {
        if !scratch.join(f.trim_start_matches('/')).is_file() {
            bail!("the .deb installed no {f}");
        }
    }
    let out = Command::new(scratch.join("usr/bin/tracer"))
        .args(["syscalls", "-d", "0.2"])
        .current_dir("/")
        .output()?;
    if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("SYSCALL") {
        bail!("the installed binary failed: {}", out.status);
    }
    let listed = Command::new("dpkg")
        .arg(format!("--root={}", scratch.display()))
        .args(["-s", "tracer"])
        .output()?;
    if !String::from_utf8_lossy(&listed.stdout).contains("Status: install ok installed") {
        bail!("dpkg does not list tracer as installed in the scratch root");
    }
    eprintln!("    the .deb installed into a scratch dpkg root and its tracer ran");
    // Debian 11 and 12 themselves: their dpkg and apt, in minimal roots.
    for r in &debian::RELEASES {
        let summary = debian::install_check(r, &d.deb, &root)?;
        eprintln!("    {summary}");
    }
    Ok(())
}

/// The members of an ar archive (a .deb), in order, with their contents.
fn ar_members(bytes: &[u8]) -> Result<Vec<(String, &[u8])>> {
    let Some(mut rest) = bytes.strip_prefix(b"!<arch>\n") else {
        bail!("not an ar archive");
    };
    let mut members = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 60 {
            bail!("a truncated ar member header");
        }
        let (header, body) = rest.split_at(60);
        let name = String::from_utf8_lossy(&header[..16])
            .trim_end()
            .trim_end_matches('/')
            .to_string();
        let size: usize = String::from_utf8_lossy(&header[48..58])
            .trim()
            .parse()
            .context("an ar member size")?;
        if body.len() < size {
            bail!("the ar member {name} is truncated");
        }
        members.push((name, &body[..size]));
        rest = &body[(size + size % 2).min(body.len())..];
    }
    Ok(members)
}

/// The .deb is one Debian 11's dpkg (1.20) reads: format 2.0, control and data
/// compressed with xz (1.20 has no zstd; `deb` pins `-Zxz`).
fn check_format(deb: &Path) -> Result<()> {
    let bytes = std::fs::read(deb).with_context(|| format!("reading {}", deb.display()))?;
    let members = ar_members(&bytes).with_context(|| format!("{}", deb.display()))?;
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    if names != ["debian-binary", "control.tar.xz", "data.tar.xz"] || members[0].1 != b"2.0\n" {
        bail!(
            "{} holds {names:?}: expected format 2.0 with control.tar.xz and data.tar.xz \
             (Debian 11's dpkg 1.20 cannot read zstd; dpkg-deb must be run with -Zxz)",
            deb.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ar_members() {
        let header = |name: &str, size: usize| format!("{name:<16}{:<32}{size:<10}`\n", "0");
        let mut ar = b"!<arch>\n".to_vec();
        ar.extend(header("debian-binary", 4).bytes());
        ar.extend(b"2.0\n");
        ar.extend(header("data.tar.xz/", 3).bytes());
        ar.extend(b"abc\n");
        let m = ar_members(&ar).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].0.as_str(), m[0].1), ("debian-binary", &b"2.0\n"[..]));
        assert_eq!((m[1].0.as_str(), m[1].1), ("data.tar.xz", &b"abc"[..]));
        assert!(ar_members(b"PK\x03\x04").is_err());
        assert!(ar_members(&ar[..ar.len() - 3]).is_err());
    }
}
