//! Minimal Debian 11 and 12 systems built from the archive's own packages, to
//! install the .deb with that release's dpkg and apt (`apt install ./tracer_*.deb`).
//!
//! The packages (the release's Essential set, apt and man-db, about 100 .debs)
//! are downloaded once with this machine's apt pointed at a separate sources
//! list, lists and status under `<cache>/debian-SUITE/` (`util::cache_root`) (the system's
//! apt sources are not touched), unpacked once with `dpkg-deb -x` into a
//! pristine root with a dpkg database saying they are installed, and copied for
//! each check. With the packages cached no network is needed.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::util::{self, show, step};

pub struct Release {
    pub version: u32,
    pub suite: &'static str,
}

pub const RELEASES: [Release; 2] = [
    Release {
        version: 11,
        suite: "bullseye",
    },
    Release {
        version: 12,
        suite: "bookworm",
    },
];

/// Installed besides the Essential set: apt (to run `apt install ./x.deb`)
/// and man-db (to read the man page the way users do).
const EXTRA: [&str; 2] = ["apt", "man-db"];

impl Release {
    fn label(&self) -> String {
        format!("Debian {} ({})", self.version, self.suite)
    }

    fn cache(&self) -> PathBuf {
        util::cache_root().join(format!("debian-{}", self.suite))
    }
}

/// The Debian mirror this machine's apt uses (deb822 `URIs:` or one-line
/// `deb URI ...`, not the security archive); deb.debian.org if none is found.
pub fn mirror() -> String {
    let mut texts = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        texts.extend(paths.iter().filter_map(|p| std::fs::read_to_string(p).ok()));
    }
    texts.extend(std::fs::read_to_string("/etc/apt/sources.list").ok());
    texts
        .iter()
        .find_map(|t| parse_mirror(t))
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_string())
}

fn parse_mirror(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if let Some(uris) = l.strip_prefix("URIs:") {
                uris.split_whitespace().next()
            } else if let Some(rest) = l.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.contains("://"))
            } else {
                None
            }
        })
        .find(|u| !u.contains("security") && u.trim_end_matches('/').ends_with("/debian"))
        .map(|u| u.trim_end_matches('/').to_string())
}

/// This machine's apt, aimed at the cache directory instead of the system's
/// sources, lists, package cache and dpkg status.
pub fn apt(dir: &Path, program: &str) -> Command {
    let mut c = Command::new(program);
    for (k, v) in [
        ("Dir::Etc::sourcelist", dir.join("sources.list")),
        ("Dir::Etc::sourceparts", "-".into()),
        ("Dir::State::Lists", dir.join("lists")),
        ("Dir::State::status", dir.join("status")),
        ("Dir::Cache", dir.join("apt")),
    ] {
        c.arg("-o").arg(format!("{k}={}", v.display()));
    }
    for o in [
        "APT::Install-Recommends=false",
        "Acquire::Languages=none",
        "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
        // The cache belongs to root; apt's _apt sandbox could not write it.
        "APT::Sandbox::User=root",
    ] {
        c.args(["-o", o]);
    }
    c.arg("-q");
    c
}

/// `cmd` as shown in messages: without apt's `-o NAME=VALUE` options.
fn brief(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    let mut args = cmd.get_args();
    while let Some(a) = args.next() {
        if a == "-o" {
            args.next();
        } else {
            words.push(a.to_string_lossy().into_owned());
        }
    }
    words.join(" ")
}

/// Stdout of `cmd`, or a one-line error naming it with what it said.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", show(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            brief(cmd),
            out.status,
            error_line(&out.stderr, &out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The line that says what went wrong: apt's first `E:` line in `stderr`, else
/// the last non-empty line of `stderr`, else of `stdout`.
fn error_line(stderr: &[u8], stdout: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr);
    if let Some(e) = err.lines().find(|l| l.starts_with("E: ")) {
        return e.trim().to_string();
    }
    [stderr, stdout]
        .iter()
        .find_map(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "no output".into())
}

/// `Essential: yes` packages of an `apt-cache dumpavail`.
fn parse_essential(dump: &str) -> Vec<String> {
    let mut names: Vec<String> = dump
        .split("\n\n")
        .filter(|s| s.lines().any(|l| l == "Essential: yes"))
        .filter_map(|s| s.lines().find_map(|l| l.strip_prefix("Package: ")))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `name=version` of each `Inst name (version ...)` line of `apt-get install -s`.
fn parse_inst(sim: &str) -> Vec<String> {
    sim.lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("Inst ")?.split_whitespace();
            let name = w.next()?;
            let version = w.next()?.strip_prefix('(')?;
            Some(format!("{name}={version}"))
        })
        .collect()
}

fn debs_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    Ok(debs)
}

/// The release's packages in `<cache>/debian-SUITE/debs/`, downloaded if
/// that directory is missing (it appears only once a download is complete).
fn packages(r: &Release) -> Result<PathBuf> {
    let dir = r.cache();
    let debs = dir.join("debs");
    if debs.is_dir() {
        return Ok(debs);
    }
    let mirror = mirror();
    step(&format!(
        "downloading {}'s Essential packages, apt and man-db from {mirror} into {}",
        r.label(),
        dir.display()
    ));
    for d in ["lists/partial", "apt/archives/partial"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::write(
        dir.join("sources.list"),
        format!("deb [trusted=yes] {mirror} {} main\n", r.suite),
    )?;
    std::fs::write(dir.join("status"), "")?;
    let offline = |what: String| {
        anyhow::anyhow!(
            "{}'s packages are not cached in {} and {what}: connect this machine to \
             {mirror} once and rerun (they are then cached), or copy that directory \
             from a machine that has it",
            r.label(),
            dir.display()
        )
    };
    let lists_cached = || -> Result<bool> {
        Ok(std::fs::read_dir(dir.join("lists"))?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains("_Packages")))
    };
    // Without --error-on=any a failed fetch is only a warning.
    let mut update = apt(&dir, "apt-get");
    update.args(["update", "--error-on=any"]);
    eprintln!("    $ apt-get ... update");
    if let Err(e) = output(&mut update) {
        if !lists_cached()? {
            return Err(offline(format!("{e:#}")));
        }
        eprintln!("    apt-get update failed ({e:#}); using the lists cached earlier");
    }
    let essential = parse_essential(&output(apt(&dir, "apt-cache").arg("dumpavail"))?);
    if essential.len() < 10 {
        bail!(
            "{}'s package lists name only {} Essential packages",
            r.label(),
            essential.len()
        );
    }
    let sim = output(
        apt(&dir, "apt-get")
            .args(["install", "-s"])
            .args(&essential)
            .args(EXTRA),
    )?;
    let wanted = parse_inst(&sim);
    if !wanted.iter().any(|p| p.starts_with("dpkg=")) {
        bail!(
            "apt-get install -s for {} would not install dpkg",
            r.label()
        );
    }
    let partial = dir.join("debs.partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    eprintln!("    $ apt-get ... download ({} packages)", wanted.len());
    output(
        apt(&dir, "apt-get")
            .arg("download")
            .args(&wanted)
            .current_dir(&partial),
    )
    .map_err(|e| offline(format!("{e:#}")))?;
    if debs_in(&partial)?.len() != wanted.len() {
        bail!(
            "apt-get download left {} of {} .debs in {}",
            debs_in(&partial)?.len(),
            wanted.len(),
            partial.display()
        );
    }
    // A root unpacked from older packages is stale now.
    let _ = std::fs::remove_dir_all(dir.join("root"));
    std::fs::rename(&partial, &debs)?;
    Ok(debs)
}

/// Unpack the release's packages into `<cache>/debian-SUITE/root` (once):
/// their files, and a dpkg database (status, file lists, md5sums) listing them as
/// installed. Maintainer scripts do not run; /etc/passwd and /etc/group get
/// root and apt's _apt user.
fn pristine(r: &Release) -> Result<PathBuf> {
    let debs = packages(r)?;
    let done = r.cache().join("root");
    if done.is_dir() {
        return Ok(done);
    }
    step(&format!("unpacking {}'s packages", r.label()));
    let root = r.cache().join("root.partial");
    let _ = std::fs::remove_dir_all(&root);
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/log/apt",
        "etc/apt/sources.list.d",
        "root",
        "tmp",
        "proc",
        "sys",
        "dev",
    ] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let mut status = String::new();
    for deb in debs_in(&debs)? {
        output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
        let control = output(Command::new("dpkg-deb").arg("-f").arg(&deb))?;
        let field = |name: &str| {
            control
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
                .map(str::to_string)
        };
        let package = field("Package").context("a .deb without a Package field")?;
        for l in control.lines() {
            status.push_str(l);
            status.push('\n');
            if l.starts_with("Package: ") {
                status.push_str("Status: install ok installed\n");
            }
        }
        status.push('\n');
        // dpkg's file list: "/." then every path, without "./" or a trailing "/".
        let listing = output(
            Command::new("sh")
                .args(["-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -t", "sh"])
                .arg(&deb),
        )?;
        let list: String = listing
            .lines()
            .map(|p| match p.trim_start_matches('.').trim_end_matches('/') {
                "" => "/.\n".to_string(),
                p => format!("{p}\n"),
            })
            .collect();
        let name = match field("Multi-Arch").as_deref() {
            Some("same") => format!("{package}:{}", field("Architecture").unwrap_or_default()),
            _ => package,
        };
        let info = root.join("var/lib/dpkg/info");
        std::fs::write(info.join(format!("{name}.list")), list)?;
        // And its md5sums (`dpkg --audit` and `dpkg --verify` want them).
        let control_dir = r.cache().join("control.partial");
        let _ = std::fs::remove_dir_all(&control_dir);
        output(
            Command::new("dpkg-deb")
                .arg("-e")
                .arg(&deb)
                .arg(&control_dir),
        )?;
        if control_dir.join("md5sums").is_file() {
            std::fs::copy(
                control_dir.join("md5sums"),
                info.join(format!("{name}.md5sums")),
            )?;
        }
        std::fs::remove_dir_all(&control_dir)?;
    }
    std::fs::write(root.join("var/lib/dpkg/status"), status)?;
    std::fs::write(root.join("var/lib/dpkg/available"), "")?;
    std::fs::write(root.join("etc/apt/sources.list"), "")?;
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\n_apt:x:100:65534::/nonexistent:/usr/sbin/nologin\n",
    )?;
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    std::fs::rename(&root, &done)?;
    Ok(done)
}

/// A copy of a release's root, where commands run chrooted (with /proc, /sys
/// and /dev mounted in a private mount namespace) and a clean environment.
struct Chroot {
    label: String,
    root: PathBuf,
}

impl Chroot {
    /// Run `script` with the root's /bin/sh; its stdout, or a one-line error.
    fn run(&self, script: &str) -> Result<String> {
        let out = Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(
                "R=$1; mount -t proc proc \"$R/proc\" && mount --rbind /sys \"$R/sys\" && \
                 mount --rbind /dev \"$R/dev\" && exec chroot \"$R\" /usr/bin/env -i \
                 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                 HOME=/root LC_ALL=C TERM=dumb DEBIAN_FRONTEND=noninteractive \
                 /bin/sh -c \"$2\"",
            )
            .arg("sh")
            .arg(&self.root)
            .arg(script)
            .output()
            .context("running unshare")?;
        if !out.status.success() {
            bail!(
                "{}: `{script}` failed ({}): {}",
                self.label,
                out.status,
                error_line(&out.stderr, &out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Run `script`; its stdout must contain each of `needles`.
    fn expect(&self, script: &str, needles: &[&str]) -> Result<String> {
        let out = self.run(script)?;
        if let Some(n) = needles.iter().find(|n| !out.contains(**n)) {
            bail!(
                "{}: `{script}` printed no {n:?}: {}",
                self.label,
                error_line(b"", out.as_bytes())
            );
        }
        Ok(out)
    }
}

/// What the .deb installs, and where Debian puts each kind of file.
pub const FILES: [&str; 5] = [
    "/usr/bin/tracer",
    "/usr/share/man/man1/tracer.1.gz",
    "/usr/share/bash-completion/completions/tracer",
    "/usr/share/zsh/vendor-completions/_tracer",
    "/usr/share/fish/vendor_completions.d/tracer.fish",
];

/// In a fresh copy of release `r`'s root under `scratch`: `dpkg -i` the .deb,
/// `dpkg -r` it (its files go), `apt install ./tracer_*.deb`, then the
/// installed tracer prints its version and counts syscalls, `man tracer`
/// shows the page and bash loads the completion. Returns a one-line summary.
pub fn install_check(r: &Release, deb: &Path, scratch: &Path) -> Result<String> {
    let pristine = pristine(r)?;
    let root = scratch.join(format!("debian-{}", r.version));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(scratch)?;
    util::sh(
        Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(&pristine)
            .arg(&root),
    )?;
    let name = deb
        .file_name()
        .context("the .deb path has no file name")?
        .to_string_lossy()
        .into_owned();
    std::fs::copy(deb, root.join("tmp").join(&name))?;
    let c = Chroot {
        label: r.label(),
        root,
    };
    let versions = c.run(
        "dpkg-query -W -f='dpkg ${Version}' dpkg && dpkg-query -W -f=', apt ${Version}' apt",
    )?;
    let c = Chroot {
        label: format!("{} ({versions})", r.label()),
        ..c
    };
    let installed = "dpkg-query -W -f='${Status}' tracer";
    c.run(&format!("dpkg -i /tmp/{name}"))?;
    c.expect(installed, &["install ok installed"])?;
    c.run("dpkg -r tracer")?;
    c.run("if test -e /usr/bin/tracer; then echo dpkg -r left it >&2; exit 1; fi")?;
    c.run(&format!("cd /tmp && apt install -y ./{name}"))?;
    c.expect(installed, &["install ok installed"])?;
    c.run(&format!(
        "for f in {}; do test -f $f || {{ echo the .deb installed no $f >&2; exit 1; }}; done",
        FILES.join(" ")
    ))?;
    let version = c.expect(
        "tracer --version",
        &[&format!("tracer {}", env!("CARGO_PKG_VERSION"))],
    )?;
    c.expect("tracer syscalls -d 0.2", &["SYSCALL"])?;
    c.expect("MANPAGER=cat MANWIDTH=80 man tracer", &["NAME", "tracer"])?;
    c.expect(
        "bash -c '. /usr/share/bash-completion/completions/tracer && complete -p tracer'",
        &["complete"],
    )?;
    Ok(format!(
        "{}: dpkg -i, dpkg -r and apt install ./{name} worked; `tracer --version` printed \
         {:?}, tracer counted syscalls, man tracer showed the page, bash loaded the completion",
        c.label,
        version.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources_dumps_and_simulations() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n\
                      Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n";
        assert_eq!(
            parse_mirror(deb822).as_deref(),
            Some("http://mirror.example/debian")
        );
        let line = "# comment\ndeb [arch=amd64] http://ftp.de.debian.org/debian bookworm main\n";
        assert_eq!(
            parse_mirror(line).as_deref(),
            Some("http://ftp.de.debian.org/debian")
        );
        assert_eq!(
            parse_mirror("deb http://example.com/ubuntu jammy main"),
            None
        );
        let dump = "Package: dash\nEssential: yes\nVersion: 1\n\nPackage: apt\nVersion: 2\n\n\
                    Package: tar\nEssential: yes\n";
        assert_eq!(parse_essential(dump), ["dash", "tar"]);
        let sim = "NOTE: simulation\nInst libc6 (2.31-13+deb11u11 Debian:11.11/oldoldstable [amd64]) []\n\
                   Conf libc6 (2.31-13+deb11u11 Debian:11.11/oldoldstable [amd64])\n\
                   Inst libcrypt1 (1:4.4.18-4 Debian:11.11/oldoldstable [amd64])\n";
        assert_eq!(
            parse_inst(sim),
            ["libc6=2.31-13+deb11u11", "libcrypt1=1:4.4.18-4"]
        );
        assert_eq!(error_line(b"a\nb\n\n", b"c"), "b");
        assert_eq!(error_line(b"", b"c\n"), "c");
        assert_eq!(error_line(b"W: x\nE: first\nE: second\n", b""), "E: first");
        let mut c = apt(Path::new("/c"), "apt-get");
        c.arg("update");
        assert_eq!(brief(&c), "apt-get -q update");
    }
}
