//! `cargo xtask vm-test`: every tracer command on real Debian kernels.
//!
//! The host kernel has neither kprobes nor fentry and is one kernel, so this
//! downloads Debian's cloud-amd64 kernels (5.10 from Debian 11, 6.1 and 6.12
//! from Debian 12; cached in `~/.cache/tracer-xtask/` (`util::cache_root`)), builds an initramfs with
//! busybox, tracer (the static binary of `cargo xtask dist`, as users copy
//! it), the fixture and its shared libraries, and boots each kernel under qemu
//! (TCG). `/init` runs `tests.sh`, which runs each command and prints its
//! output between markers; this module judges it (`judge`, with the checks of
//! the commands other than kprobe in `commands.rs`), the same way on every
//! kernel. A panic, a hang (the time limit) or a missing result is a failure
//! of the checks concerned, never a skip; a table of check by kernel ends the run.
//!
//! `TRACER_VM_KERNELS=6.1` (comma separated labels) limits the run to some kernels.
use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::util::{self, sh, step, Env};

mod commands;

const INIT: &str = include_str!("init.sh");
const TESTS: &str = include_str!("tests.sh");
/// Reads per cost measurement (tests.sh's R).
const COST_READS: u64 = 200_000;

/// Reads the fixture makes in each traced run (tests.sh's N); also its
/// function calls (uprobe) and syscalls (syscalls) where those are counted.
const N: u64 = 2000;
/// getppid calls `tracer trace` prints a line for (tests.sh's L).
const LINES: u64 = 100;
/// The command `tracer exec --` runs (tests.sh's EXEC_SH).
const EXEC_SH: &str = "fixture execs 3 /bin/true x; exit 7";
/// Longest a VM may run before it counts as hung. 6.1 takes about 230 s on a
/// busy 2-core machine (the kprobe checks and cost rounds about 200 s, every
/// other command about 25 s; each tracer run is bounded to 60 s in tests.sh);
/// the 240 s this was could be overrun by the kprobe checks alone under load.
const TIME_LIMIT: Duration = Duration::from_secs(480);

/// A kernel to test: a label, the Debian meta-package that names its newest
/// build, and the suite to find it in (None: the machine's own apt sources).
struct Kernel {
    label: &'static str,
    meta: &'static str,
    suite: Option<&'static str>,
}

const KERNELS: [Kernel; 3] = [
    // Debian 11's kernel: no task storage (5.11), no BPF cookies or perf-event
    // bpf_link (5.15), no bpf_get_func_ip (5.15).
    Kernel {
        label: "5.10",
        meta: "linux-image-cloud-amd64",
        suite: Some("bullseye"),
    },
    Kernel {
        label: "6.1",
        meta: "linux-image-cloud-amd64",
        suite: None,
    },
    Kernel {
        label: "6.12",
        meta: "linux-image-6.12-cloud-amd64",
        suite: None,
    },
];

const BACKENDS: [&str; 2] = ["kprobe", "fentry"];

/// The runs tests.sh kills with SIGKILL once attached (its `killed` calls):
/// every way tracer attaches, the perf-event ioctl of kernels without
/// perf-event links among them.
const KILLED: [&str; 10] = [
    "syscalls",
    "trace",
    "uprobe",
    "tracepoint",
    "kprobe",
    "fentry",
    "serve",
    "profile",
    "offcpu",
    "tcp",
];

fn cache_dir() -> PathBuf {
    util::cache_root()
}

/// apt's options for a suite the machine's sources do not list: a sources
/// list, package lists and caches of its own under `<cache>/apt-SUITE/`, so
/// the system's apt configuration and state stay untouched. The sources list
/// is written (and `apt-get update` run) by `suite_apt`.
fn apt_options(dir: &Path) -> Vec<String> {
    vec![
        "-o".into(),
        format!(
            "Dir::Etc::sourcelist={}",
            dir.join("sources.list").display()
        ),
        "-o".into(),
        "Dir::Etc::sourceparts=-".into(),
        "-o".into(),
        format!("Dir::State::Lists={}", dir.join("lists").display()),
        "-o".into(),
        format!("Dir::Cache={}", dir.join("cache").display()),
    ]
}

/// The Debian mirror the machine's apt uses: the first `deb` source of a
/// release suite (not -security, -updates, -backports) in deb822 `.sources`
/// files or one-line `sources.list` files.
fn debian_mirror() -> Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    files.sort();
    files.push(PathBuf::from("/etc/apt/sources.list"));
    files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            match f.extension().and_then(|x| x.to_str()) {
                Some("sources") => parse_deb822_mirror(&text),
                Some("list") => parse_one_line_mirror(&text),
                _ => None,
            }
        })
        .next()
        .context(
            "no Debian mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list",
        )
}

/// A release suite: `bookworm`, not `bookworm-security` or `bookworm-updates`.
fn release_suite(s: &str) -> bool {
    !s.is_empty() && !s.contains('-') && !s.contains('/')
}

/// The URI of the first deb822 stanza with `Types: deb` and a release suite.
fn parse_deb822_mirror(text: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
            })
        };
        let enabled = field("Enabled").is_none_or(|e| e != "no");
        let deb = field("Types")?.split_whitespace().any(|t| t == "deb");
        let release = field("Suites")?.split_whitespace().any(release_suite);
        let uri = field("URIs")?.split_whitespace().next()?.to_string();
        (enabled && deb && release).then_some(uri)
    })
}

/// The URI of the first `deb [options] URI SUITE COMPONENTS` line with a release suite.
fn parse_one_line_mirror(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix("deb ")?;
        let rest = match rest.trim_start().strip_prefix('[') {
            Some(r) => r.split_once(']')?.1,
            None => rest,
        };
        let mut w = rest.split_whitespace();
        let (uri, suite) = (w.next()?, w.next()?);
        release_suite(suite).then(|| uri.to_string())
    })
}

/// `<cache>/apt-SUITE/` with a sources list for SUITE on the machine's
/// mirror, and its package lists updated.
fn suite_apt(suite: &str) -> Result<PathBuf> {
    let dir = cache_dir().join(format!("apt-{suite}"));
    for d in ["lists/partial", "cache/archives/partial"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    let mirror = debian_mirror()?;
    std::fs::write(
        dir.join("sources.list"),
        format!("deb [trusted=yes] {mirror} {suite} main\n"),
    )?;
    sh(Command::new("apt-get")
        .args(apt_options(&dir))
        .args(["-q", "update"]))?;
    Ok(dir)
}

/// The exact package a meta-package depends on (`Depends: linux-image-6.1.0-56-cloud-amd64`).
fn resolve_package(meta: &str, apt: &[String]) -> Result<String> {
    let out = Command::new("apt-cache")
        .args(apt)
        .args(["depends", meta])
        .output()
        .context("running apt-cache")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_depends(&text)
        .with_context(|| format!("apt-cache depends {meta} names no kernel package"))
}

fn parse_depends(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_string)
}

/// The newest cached image of the series `label` among file names
/// (`linux-image-6.1.0-41-cloud-amd64.vmlinuz` is 6.1, not 6.12).
fn cached_image(names: &[String], label: &str) -> Option<String> {
    names
        .iter()
        .filter(|n| n.ends_with(".vmlinuz") && n.contains(&format!("-{label}.")))
        .max()
        .cloned()
}

/// The kernel image of `k`, downloaded and unpacked once.
fn kernel_image(k: &Kernel) -> Result<PathBuf> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache)?;
    let apt = match k.suite {
        Some(suite) => suite_apt(suite).map(|d| apt_options(&d)),
        None => Ok(Vec::new()),
    };
    let pkg = match apt.and_then(|apt| Ok((resolve_package(k.meta, &apt)?, apt))) {
        Ok(p) => p,
        Err(e) => {
            // Offline: use what an earlier run cached for this series.
            let names: Vec<String> = std::fs::read_dir(&cache)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            match cached_image(&names, k.label) {
                Some(n) => {
                    eprintln!(
                        "    cannot resolve {} ({e:#}); using the cached {n}",
                        k.meta
                    );
                    return Ok(cache.join(n));
                }
                None => return Err(e),
            }
        }
    };
    let (pkg, apt) = pkg;
    let image = cache.join(format!("{pkg}.vmlinuz"));
    if image.exists() {
        return Ok(image);
    }
    step(&format!("downloading {pkg}"));
    let dl = cache.join(format!("dl-{pkg}"));
    let _ = std::fs::remove_dir_all(&dl);
    std::fs::create_dir_all(&dl)?;
    sh(Command::new("apt-get")
        .args(&apt)
        .args(["download", "-q", &pkg])
        .current_dir(&dl))?;
    let deb = std::fs::read_dir(&dl)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    let root = dl.join("root");
    sh(Command::new("dpkg").arg("-x").arg(&deb).arg(&root))?;
    let vmlinuz = std::fs::read_dir(root.join("boot"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("the package holds no /boot/vmlinuz-*")?;
    std::fs::copy(&vmlinuz, &image)?;
    std::fs::remove_dir_all(&dl)?;
    Ok(image)
}

/// Shared libraries `ldd` lists for `bin` (absolute paths).
fn libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

fn copy_into(stage: &Path, src: &Path, dest: &str) -> Result<()> {
    let to = stage.join(dest.trim_start_matches('/'));
    std::fs::create_dir_all(to.parent().unwrap())?;
    std::fs::copy(src, &to)
        .with_context(|| format!("copying {} into the initramfs", src.display()))?;
    Ok(())
}

/// The C fixture without frame pointers (tracer-fixtures/c/nofp.c), built
/// `-O2 -fomit-frame-pointer` as Debian builds its programs.
fn nofp_fixture() -> Result<PathBuf> {
    let dir = util::target_dir().join("vm");
    std::fs::create_dir_all(&dir)?;
    let bin = dir.join("nofp");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tracer-fixtures/c/nofp.c");
    sh(Command::new("gcc")
        .args([
            "-O2",
            "-fomit-frame-pointer",
            "-fasynchronous-unwind-tables",
            "-o",
        ])
        .arg(&bin)
        .arg(&src))?;
    Ok(bin)
}

/// Build `initrd.gz` (newc cpio, gzip) with busybox, tracer (static: no
/// libraries), the fixture, bpftool (what is loaded after tracer is killed)
/// and their libraries.
fn initramfs(tracer: &Path, fixture: &Path, nofp: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let cache = util::target_dir().join("vm");
    std::fs::create_dir_all(&cache)?;
    let stage = cache.join("initramfs");
    let _ = std::fs::remove_dir_all(&stage);
    for d in ["bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(stage.join(d))?;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .context("busybox is missing: run `cargo xtask setup` (installs busybox-static)")?;
    copy_into(&stage, busybox, "/bin/busybox")?;
    copy_into(&stage, tracer, "/bin/tracer")?;
    copy_into(&stage, fixture, "/bin/fixture")?;
    copy_into(&stage, nofp, "/bin/nofp")?;
    let bpftool = ["/usr/sbin/bpftool", "/sbin/bpftool", "/usr/bin/bpftool"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .context("bpftool is missing: run `cargo xtask setup` (installs bpftool)")?;
    // Debian's /usr/sbin/bpftool may be a link to the versioned binary.
    let bpftool = &std::fs::canonicalize(bpftool)?;
    copy_into(&stage, bpftool, "/bin/bpftool")?;
    for bin in [tracer, fixture, nofp, bpftool] {
        for lib in libraries(bin)? {
            copy_into(&stage, &lib, &lib.to_string_lossy())?;
        }
    }
    std::fs::write(stage.join("init"), INIT)?;
    std::fs::set_permissions(stage.join("init"), std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(
        stage.join("tests.sh"),
        format!("N={N}\nR={COST_READS}\nL={LINES}\nEXEC_SH='{EXEC_SH}'\n{TESTS}"),
    )?;
    let out = cache.join("initrd.gz");
    sh(Command::new("sh")
        .arg("-c")
        .arg("find . | cpio -o -H newc --quiet | gzip -1 > ../initrd.gz")
        .current_dir(&stage))?;
    Ok(out)
}

/// Boot `kernel` with `initrd`: the console lines, and an error on a hang or a
/// crash (the lines up to it are still judged: what ran, ran).
fn boot(kernel: &Path, initrd: &Path, log: &Path) -> Result<(Vec<String>, Result<()>)> {
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            // Two guest CPUs, run by one host thread: with multi-threaded TCG,
            // a 6.12 guest once oopsed on an int3 left over from the kernel
            // patching its own code (a jump label) while tracer attached, in
            // code another vCPU was running; not a fault of the guest's.
            "-accel",
            "tcg,thread=single",
            "-cpu",
            "max",
            "-m",
            "1024",
            "-smp",
            "2",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64 (cargo xtask setup installs qemu-system-x86)")?;
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut lines = Vec::new();
    let mut hung = false;
    loop {
        let left = TIME_LIMIT.saturating_sub(start.elapsed());
        if left.is_zero() {
            hung = true;
            break;
        }
        match rx.recv_timeout(left) {
            Ok(l) => {
                if l.contains("VMTEST-KERNEL")
                    || l.starts_with("VMTEST-END")
                    || l.starts_with("VMTEST-BOUND")
                    || l.contains("Kernel panic")
                {
                    eprintln!("    [{:5.1}s] {l}", start.elapsed().as_secs_f64());
                }
                lines.push(l);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                hung = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if hung {
        let _ = child.kill();
    }
    let status = child.wait()?;
    let _ = std::fs::write(log, lines.join("\n"));
    let finished = if hung {
        Err(anyhow::anyhow!(
            "the VM did not finish within {TIME_LIMIT:?}; its last line: {:?} (console log: {})",
            lines.last().map_or("", String::as_str),
            log.display()
        ))
    } else if let Some(p) = lines.iter().find(|l| l.contains("Kernel panic")) {
        Err(anyhow::anyhow!(
            "the kernel panicked: {p} (console log: {})",
            log.display()
        ))
    } else if !lines.iter().any(|l| l == "VMTEST-DONE") {
        Err(anyhow::anyhow!(
            "the VM stopped before the tests finished ({status}; console log: {})",
            log.display()
        ))
    } else {
        Ok(())
    };
    Ok((lines, finished))
}

/// tests.sh's `VMTEST-BOUND STEP: ...` lines: a wait that ran out, by name.
fn bounds(lines: &[String]) -> Result<()> {
    let hit: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("VMTEST-BOUND "))
        .collect();
    if hit.is_empty() {
        Ok(())
    } else {
        bail!("a wait ran out: {}", hit.join("; "))
    }
}

/// One run's output: stdout lines, stderr lines, exit code.
#[derive(Debug, Default, Clone)]
struct Section {
    stdout: Vec<String>,
    stderr: Vec<String>,
    rc: Option<i32>,
}

/// `VMTEST-BEGIN name backend` ... `VMTEST-STDERR` ... `VMTEST-END name backend rc=N`.
fn sections(lines: &[String]) -> BTreeMap<(String, String), Section> {
    let mut out = BTreeMap::new();
    let mut cur: Option<((String, String), Section, bool)> = None;
    for l in lines {
        if let Some(rest) = l.strip_prefix("VMTEST-BEGIN ") {
            let mut w = rest.split_whitespace();
            let key = (
                w.next().unwrap_or_default().to_string(),
                w.next().unwrap_or_default().to_string(),
            );
            cur = Some((key, Section::default(), false));
        } else if l == "VMTEST-STDERR" {
            if let Some(c) = cur.as_mut() {
                c.2 = true;
            }
        } else if let Some(rest) = l.strip_prefix("VMTEST-END ") {
            if let Some((key, mut s, _)) = cur.take() {
                s.rc = rest
                    .rsplit_once("rc=")
                    .and_then(|(_, n)| n.trim().parse().ok());
                out.insert(key, s);
            }
        } else if let Some((_, s, err)) = cur.as_mut() {
            if *err {
                s.stderr.push(l.clone());
            } else {
                s.stdout.push(l.clone());
            }
        }
    }
    out
}

/// The last JSON block of a run, and its `vfs_read` row.
fn vfs_read_row(s: &Section) -> Result<(Value, Value)> {
    vfs_read_row_in(&s.stdout)
}

/// The same, from the lines a report went to.
fn vfs_read_row_in(lines: &[String]) -> Result<(Value, Value)> {
    let block: Value = lines
        .iter()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no JSON output")
        .and_then(|l| serde_json::from_str(l).context("bad JSON"))?;
    let row = block["functions"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["function"] == "vfs_read"))
        .cloned()
        .context("no vfs_read row")?;
    Ok((block, row))
}

/// At most 10 of `lines` (the first and last 5), for an error message.
fn excerpt(lines: &[String]) -> String {
    if lines.len() <= 10 {
        return lines.join(" | ");
    }
    format!(
        "{} | ... {} more ... | {}",
        lines[..5].join(" | "),
        lines.len() - 10,
        lines[lines.len() - 5..].join(" | ")
    )
}

fn ran_ok(s: &Section) -> Result<()> {
    if s.rc != Some(0) {
        // Where a run's stderr is its section's stdout (attach), show that.
        let out = if s.stderr.is_empty() {
            &s.stdout
        } else {
            &s.stderr
        };
        bail!("tracer exited with {:?}: {}", s.rc, excerpt(out));
    }
    Ok(())
}

fn check_count(s: &Section, backend: &str) -> Result<()> {
    ran_ok(s)?;
    let (block, row) = vfs_read_row(s)?;
    if block["backend"] != backend {
        bail!("ran with backend {} instead of {backend}", block["backend"]);
    }
    let calls = row["calls"].as_u64().unwrap_or(0);
    if calls != N {
        bail!("vfs_read counted {calls} calls, the fixture made {N}");
    }
    Ok(())
}

fn check_latency(s: &Section) -> Result<()> {
    ran_ok(s)?;
    let (_, row) = vfs_read_row(s)?;
    let count = row["count"].as_u64().unwrap_or(0);
    let in_buckets: u64 = row["buckets"]
        .as_array()
        .map(|b| b.iter().filter_map(|x| x["count"].as_u64()).sum())
        .unwrap_or(0);
    if count != N || in_buckets != N {
        bail!("latency samples: count {count}, in buckets {in_buckets}, expected {N}");
    }
    if row["total_ns"].as_u64().unwrap_or(0) == 0 {
        bail!("total time is 0");
    }
    Ok(())
}

fn check_stack(s: &Section) -> Result<()> {
    ran_ok(s)?;
    let (block, row) = vfs_read_row(s)?;
    if row["calls"].as_u64() != Some(N) {
        bail!("vfs_read counted {} calls, expected {N}", row["calls"]);
    }
    let stacks = block["stacks"].as_array().context("no stacks")?;
    let total: u64 = stacks.iter().filter_map(|s| s["count"].as_u64()).sum();
    if total != N {
        bail!("stacks hold {total} calls, expected {N}");
    }
    let top = &stacks[0]["frames"];
    let frames: Vec<&str> = top
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !frames
        .iter()
        .any(|f| f.starts_with("ksys_read") || f.starts_with("__x64_sys_read"))
    {
        bail!("the top stack does not go through the read syscall: {frames:?}");
    }
    if !frames.first().is_some_and(|f| f.starts_with("vfs_read")) {
        bail!("the top stack does not start in vfs_read: {frames:?}");
    }
    Ok(())
}

/// `-P -p PID`: one row, the fixture's, with its N calls of vfs_read.
fn check_per_process(s: &Section, pid: u64) -> Result<()> {
    ran_ok(s)?;
    let (block, row) = vfs_read_row(s)?;
    if row["calls"].as_u64() != Some(N) {
        bail!("vfs_read counted {} calls, expected {N}", row["calls"]);
    }
    let procs = block["processes"]
        .as_array()
        .context("no processes in the report")?;
    let rows: Vec<(u64, u64, &str)> = procs
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_u64().unwrap_or(0);
            (n("pid"), n("calls"), p["comm"].as_str().unwrap_or(""))
        })
        .collect();
    if rows != [(pid, N, "fixture")] {
        bail!("per-process rows {rows:?}, expected [({pid}, {N}, \"fixture\")]");
    }
    Ok(())
}

/// `-- sh -c "fixture read-zero M; true"`: the runs with M=N and M=0 differ by exactly N.
fn check_launched(zero: &Section, n: &Section) -> Result<()> {
    ran_ok(zero)?;
    ran_ok(n)?;
    let calls = |s: &Section| -> Result<u64> {
        // The command owns stdout: the report is on stderr.
        if s.stdout.iter().any(|l| l.starts_with('{')) {
            bail!("the report of a launched command is on its stdout");
        }
        let (block, row) = vfs_read_row_in(&s.stderr)?;
        if block["exit_code"] != 0 {
            bail!("exit_code {} in the report", block["exit_code"]);
        }
        Ok(row["calls"].as_u64().unwrap_or(0))
    };
    let (c0, cn) = (calls(zero)?, calls(n)?);
    if cn.checked_sub(c0) != Some(N) {
        bail!("vfs_read calls: {cn} with {N} reads, {c0} with none; the difference should be {N}");
    }
    Ok(())
}

/// The text reports hold the line a user would read the answer from.
fn check_text(name: &str, out: &[String], want: &str) -> Result<()> {
    let ok = match name {
        "text-count" => {
            out.iter()
                .any(|l| l == &format!("{:<36} {:>8}", "FUNC", "COUNT"))
                && out.iter().any(|l| l == want)
        }
        "text-latency" => {
            out.iter().any(|l| l == "Function = vfs_read")
                && out
                    .iter()
                    .any(|l| l.starts_with("     nsecs               : count     distribution"))
                && out
                    .iter()
                    .any(|l| l.starts_with(want) && l.ends_with(&format!("count: {N}")))
        }
        _ => {
            out.iter().any(|l| {
                l.trim_start().starts_with("ksys_read")
                    || l.trim_start().starts_with("__x64_sys_read")
            }) && out.iter().any(|l| l == want)
        }
    };
    if !ok {
        bail!("unexpected report:\n{}", out.join("\n"));
    }
    Ok(())
}

/// `Using ... for K functions (attached in X s, Y ms per function).` -> (K, X).
fn parse_using(line: &str) -> Option<(u64, f64)> {
    let (_, rest) = line.split_once(" for ")?;
    let k = rest.split_whitespace().next()?.parse().ok()?;
    let (_, rest) = rest.split_once("attached in ")?;
    let secs = rest.split_whitespace().next()?.parse().ok()?;
    Some((k, secs))
}

/// Results of one kernel.
struct KernelResult {
    label: String,
    release: String,
    checks: Vec<(String, Result<()>)>,
    /// Measurements (they go to BENCHMARKS.md through NOTES_FILE).
    notes: Vec<String>,
    /// What the kernel lacks and which path a command said it took.
    remarks: Vec<String>,
}

/// The pid a `VMTEST-PID name variant PID` line gave the fixture of a run.
fn fixture_pid(lines: &[String], name: &str, variant: &str) -> Option<u64> {
    let prefix = format!("VMTEST-PID {name} {variant} ");
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
}

/// The runs of `tracer kprobe`: per backend, the text reports, the default choice.
fn is_kprobe_section(name: &str, variant: &str) -> bool {
    BACKENDS.contains(&variant) || name.starts_with("text-") || name == "default"
}

/// Every check of one kernel, in a fixed order whatever the output holds: a
/// run that is missing from `lines` (not run, or the VM stopped first) fails
/// its check, and so does a VM that did not finish (`finished`).
fn judge(label: &str, lines: &[String], finished: Result<()>) -> KernelResult {
    let secs = sections(lines);
    let release = lines
        .iter()
        .find_map(|l| l.split_once("VMTEST-KERNEL ").map(|(_, r)| r))
        .unwrap_or("?")
        .to_string();
    let readme = std::fs::read_to_string(util::root().join("README.md")).unwrap_or_default();
    let mut checks = vec![
        ("VM ran every test".to_string(), finished),
        ("every VM step within its bound".to_string(), bounds(lines)),
    ];
    let mut notes = Vec::new();
    let mut remarks = Vec::new();
    let get = |name: &str, v: &str| {
        secs.get(&(name.to_string(), v.to_string()))
            .cloned()
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no result for `{name} {v}`: the VM output lacks it (not run, or the VM stopped first)"
                )
            })
    };
    for b in BACKENDS {
        let c = get("count", b).and_then(|s| check_count(&s, b));
        checks.push((format!("kprobe/{b} count"), c));
        let c = get("latency", b).and_then(|s| check_latency(&s));
        checks.push((format!("kprobe/{b} latency"), c));
        let c = get("stack", b).and_then(|s| check_stack(&s));
        checks.push((format!("kprobe/{b} stack"), c));
        let c = get("perproc", b).and_then(|s| {
            check_per_process(
                &s,
                fixture_pid(lines, "perproc", b).context("no fixture pid")?,
            )
        });
        checks.push((format!("kprobe/{b} -P -p PID"), c));
        let c = get("cmd0", b).and_then(|z| check_launched(&z, &get(&format!("cmd{N}"), b)?));
        checks.push((format!("kprobe/{b} -- CMD (forks followed)"), c));
        let attach = get("attach", b).and_then(|s| {
            ran_ok(&s)?;
            let line = s.stdout.iter().find(|l| l.starts_with("Using")).context("no `Using` line")?;
            let (k, secs) = parse_using(line).context("unparsable `Using` line")?;
            let failed = s.stdout.iter().filter(|l| l.starts_with("  ")).count();
            notes.push(format!(
                "{b}: attached {k} functions of vfs_* in {secs:.2} s = {:.1} ms per function ({failed} not attachable)",
                secs * 1e3 / (k as usize + failed).max(1) as f64
            ));
            Ok(())
        });
        checks.push((format!("kprobe/{b} attach vfs_*"), attach));
    }
    for (name, want) in [
        ("text-count", format!("{:<36} {:>8}", "vfs_read", N)),
        ("text-latency", "avg = ".to_string()),
        ("text-stack", format!("    {N}")),
    ] {
        let c = get(name, "auto").and_then(|s| {
            ran_ok(&s)?;
            check_text(name, &s.stdout, &want)
        });
        checks.push((format!("kprobe {name} (text report)"), c));
    }
    let c = check_kprobe_json(&secs, &readme);
    checks.push(("kprobe --json as README documents".into(), c));
    let c = match lines
        .iter()
        .find_map(|l| l.strip_prefix("VMTEST-COST-FAILED "))
    {
        Some(f) => {
            let (b, why) = f.split_once(' ').unwrap_or((f, ""));
            Err(anyhow::anyhow!(
                "tracer kprobe --backend {b} did not attach for a cost round: {why}"
            ))
        }
        None => cost_line(&costs(lines)).map(|l| notes.push(l)),
    };
    checks.push(("kprobe cost measured".into(), c));
    if let Ok(s) = get("default", "auto") {
        if let Some(l) = s.stdout.iter().find(|l| l.starts_with("Using")) {
            notes.push(format!("default choice: {l}"));
        }
    }

    let c = get("info", "auto").and_then(|s| {
        for m in commands::info(&s, &release, &readme)? {
            remarks.push(format!("info: {m}"));
        }
        Ok(())
    });
    checks.push(("info".into(), c));
    let c = get("syscalls", "auto").and_then(|s| check_syscalls(&s, &readme));
    checks.push(("syscalls -- CMD (forks followed)".into(), c));
    let c = get("syscalls-all", "auto").and_then(|s| commands::syscalls_all(&s, &readme));
    checks.push(("syscalls system-wide".into(), c));
    let c = get("syscalls-comm", "0")
        .and_then(|z| commands::syscalls_comm(&z, &get("syscalls-comm", &N.to_string())?, &readme));
    checks.push(("syscalls --comm -e read".into(), c));
    let c = get("syscalls-P", "auto").and_then(|s| {
        let pid = fixture_pid(lines, "syscalls-P", "auto").context("no fixture pid")?;
        commands::syscalls_per_process(&s, pid, &readme)
    });
    checks.push(("syscalls -P".into(), c));
    let c = get("trace", "text").and_then(|s| commands::trace_text(&s));
    checks.push(("trace -- CMD (exit code)".into(), c));
    let c = get("trace", "json").and_then(|s| commands::trace_json(&s, &readme));
    checks.push(("trace --json".into(), c));
    let c = get("exec", "cmd").and_then(|s| commands::exec(&s, &readme));
    checks.push(("exec -- CMD".into(), c));
    let c = get("uprobe", "count").and_then(|s| commands::uprobe(&s, false, &readme));
    checks.push(("uprobe -- CMD".into(), c));
    let c = get("uprobe", "latency").and_then(|s| commands::uprobe(&s, true, &readme));
    checks.push(("uprobe -L".into(), c));
    let c = get("tracepoint", "exec").and_then(|s| commands::tracepoint_exec(&s, &readme));
    checks.push(("tracepoint -P -- CMD".into(), c));
    let c = get("tracepoint", "hist").and_then(|s| commands::tracepoint_hist(&s, &readme));
    checks.push(("tracepoint --hist".into(), c));
    let c = get("serve", "comm").and_then(|s| commands::serve(&s, LINES));
    checks.push(("serve --by comm (HTTP, SIGTERM)".into(), c));
    let c = get("syscalls", "cgroup").and_then(|s| commands::syscalls_cgroup(&s));
    checks.push(("syscalls --cgroup -- CMD".into(), c));
    let c = get("pidns", "syscalls").and_then(|s| commands::pidns_syscalls(&s));
    checks.push(("syscalls -- CMD in a PID namespace".into(), c));
    let c = get("pidns", "trace").and_then(|s| commands::pidns_trace(&s));
    checks.push(("trace -- CMD in a PID namespace (pids)".into(), c));
    let c = get("tcp", "close").and_then(|s| commands::tcp_close(&s, 5, 3000, "ipv4"));
    checks.push(("tcp -- CMD (IPv4 closes, bytes)".into(), c));
    let c = get("tcp", "close6").and_then(|s| commands::tcp_close(&s, 3, 2000, "ipv6"));
    checks.push(("tcp -- CMD (IPv6 closes, bytes)".into(), c));
    let c = get("tcp", "accept").and_then(|s| commands::tcp_accept(&s));
    checks.push(("tcp --accept -- CMD".into(), c));
    let c = get("tcp", "refused").and_then(|s| commands::tcp_refused(&s));
    checks.push(("tcp --connect (refused)".into(), c));
    let c = get("tcp", "retransmits").and_then(|s| commands::tcp_retransmits(&s));
    checks.push(("tcp --retransmits attaches".into(), c));
    let c = get("profile", "cpu").and_then(|s| commands::profile_cpu(&s));
    checks.push(("profile -F 499 --folded -- CMD".into(), c));
    let c = get("profile", "nofp").and_then(|s| commands::profile_nofp(&s));
    checks.push(("profile -- CMD without frame pointers".into(), c));
    let c = get("profile", "offcpu").and_then(|s| commands::profile_off_cpu(&s));
    checks.push(("profile --off-cpu --folded -- CMD".into(), c));
    let c = get("list", "kprobes").and_then(|s| commands::list_kprobes(&s));
    checks.push(("list kprobes".into(), c));
    let c = get("list", "tracepoints").and_then(|s| commands::list_tracepoints(&s));
    checks.push(("list tracepoints".into(), c));
    let c = get("list", "fields").and_then(|s| commands::list_fields(&s));
    checks.push(("list tracepoints -v".into(), c));
    let c = get("list", "uprobes").and_then(|s| commands::list_uprobes(&s));
    checks.push(("list uprobes".into(), c));
    for kind in KILLED {
        let c = get("killed", kind).and_then(|s| commands::nothing_left(&s));
        checks.push((format!("nothing left after SIGKILL: {kind}"), c));
    }

    // Which path a command took, where it says so (kprobe's are noted above).
    let mut said: Vec<&String> = secs
        .iter()
        .filter(|((n, v), _)| !is_kprobe_section(n, v))
        .flat_map(|(_, s)| &s.stderr)
        .filter(|l| l.starts_with("Using ") || l.contains("fallback"))
        .collect();
    said.sort();
    said.dedup();
    remarks.extend(said.into_iter().map(|l| format!("said: {l}")));
    KernelResult {
        label: label.to_string(),
        release,
        checks,
        notes,
        remarks,
    }
}

/// Every JSON object tracer kprobe printed in the VM, against the README's
/// table: fields and types both ways (count, latency, stack and -P runs
/// together show every documented field; -- CMD runs add `exit_code`).
fn check_kprobe_json(secs: &BTreeMap<(String, String), Section>, readme: &str) -> Result<()> {
    let doc = crate::jsondoc::documented(readme, "### `tracer kprobe --json`")
        .map_err(anyhow::Error::msg)?;
    let objects: Vec<Value> = secs
        .iter()
        .filter(|((name, variant), _)| is_kprobe_section(name, variant))
        // A launched command's report is on stderr.
        .flat_map(|(_, s)| s.stdout.iter().chain(&s.stderr))
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let seen = crate::jsondoc::check(&doc, &objects).map_err(anyhow::Error::msg)?;
    let missing = crate::jsondoc::uncovered(&doc, &seen);
    if !missing.is_empty() {
        bail!("documented fields never seen: {missing:?}");
    }
    Ok(())
}

/// `tracer syscalls -- fixture forks 3 100`: 3 children of 100 getppid each.
fn check_syscalls(s: &Section, readme: &str) -> Result<()> {
    ran_ok(s)?;
    let last: Value = s
        .stdout
        .iter()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no JSON output")
        .and_then(|l| serde_json::from_str(l).context("bad JSON"))?;
    let calls = |name: &str| {
        last["syscalls"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["syscall"] == name))
            .and_then(|r| r["calls"].as_u64())
    };
    for (name, want) in [
        ("getppid", 300),
        ("wait4", 3),
        ("exit_group", 4),
        ("execve", 1),
    ] {
        if calls(name) != Some(want) {
            bail!("{name}: {:?} calls, expected {want}: {last}", calls(name));
        }
    }
    if last["total"]["total_ns"].as_u64().unwrap_or(0) == 0 {
        bail!("no time measured: {last}");
    }
    commands::documented(
        readme,
        commands::SYSCALLS_DOC,
        &commands::json_objects(&s.stdout),
    )
}

/// The `VMTEST-COST backend t0 t1` lines (guest uptime, seconds): the fastest
/// round of each backend.
fn costs(lines: &[String]) -> BTreeMap<String, f64> {
    let mut costs: BTreeMap<String, f64> = BTreeMap::new();
    for l in lines {
        if let Some(rest) = l.strip_prefix("VMTEST-COST ") {
            let w: Vec<&str> = rest.split_whitespace().collect();
            if let [b, t0, t1] = w[..] {
                if let (Ok(t0), Ok(t1)) = (t0.parse::<f64>(), t1.parse::<f64>()) {
                    let t: f64 = t1 - t0;
                    let e = costs.entry(b.to_string()).or_insert(t);
                    *e = e.min(t);
                }
            }
        }
    }
    costs
}

/// One line on what counting vfs_read costs per call with each backend.
fn cost_line(costs: &BTreeMap<String, f64>) -> Result<String> {
    let base = *costs.get("none").context("no baseline measurement")?;
    let per_call = |b: &str| -> Result<f64> {
        let t = costs
            .get(b)
            .with_context(|| format!("no measurement for {b}"))?;
        Ok((t - base) * 1e9 / COST_READS as f64)
    };
    let (k, f) = (per_call("kprobe")?, per_call("fentry")?);
    Ok(format!(
        "{COST_READS} reads of /dev/zero, fastest of 3 rounds: {base:.2} s untraced; counting \
         vfs_read adds {k:.0} ns per call with kprobe, {f:.0} ns with fentry (TCG: indicative)"
    ))
}

/// Where the last run's measurements are kept (under target/).
pub const NOTES_FILE: &str = "vm-test-notes.md";

/// The table of PASS/FAIL, one row per check and one column per kernel; a
/// check a kernel has no result for is a FAIL.
fn summary_table(results: &[KernelResult]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        for (n, _) in &r.checks {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0).max(5);
    let mut out = format!("{:<width$}", "check");
    for r in results {
        out += &format!("  {:>6}", r.label);
    }
    out += "\n";
    for n in &names {
        out += &format!("{n:<width$}");
        for r in results {
            let pass = r.checks.iter().any(|(c, res)| c == n && res.is_ok());
            out += &format!("  {:>6}", if pass { "PASS" } else { "FAIL" });
        }
        out += "\n";
    }
    out
}

/// Build, boot every kernel, judge; Err if anything failed.
pub fn run(env: &Env) -> Result<()> {
    // tracer as users copy it: the static binary of `cargo xtask dist`.
    let tracer = crate::dist::run(env)?.binary;
    step("building the fixture (release) for the VM");
    util::cargo(env, &["build", "--release", "-p", "tracer-fixtures"])?;
    let nofp = nofp_fixture()?;
    let initrd = initramfs(&tracer, &util::target_dir().join("release/fixture"), &nofp)?;
    let mut results = Vec::new();
    let mut times = Vec::new();
    let only = std::env::var("TRACER_VM_KERNELS").ok();
    let wanted = |k: &Kernel| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|l| l.trim() == k.label))
    };
    for k in KERNELS.iter().filter(|k| wanted(k)) {
        let started = Instant::now();
        let booted = kernel_image(k)
            .with_context(|| format!("cannot get the {} kernel", k.label))
            .and_then(|image| {
                step(&format!(
                    "booting {} under qemu (TCG)",
                    image.file_name().unwrap().to_string_lossy()
                ));
                let log = util::target_dir()
                    .join("vm")
                    .join(format!("console-{}.log", k.label));
                let vm = Instant::now();
                let r = boot(&image, &initrd, &log)?;
                times.push(format!("{} {:.0} s", k.label, vm.elapsed().as_secs_f64()));
                Ok(r)
            });
        let r = match booted {
            Ok((lines, finished)) => judge(k.label, &lines, finished),
            // Every check fails, each saying why.
            Err(e) => {
                let mut r = judge(k.label, &[], Ok(()));
                for (_, c) in &mut r.checks {
                    *c = Err(anyhow::anyhow!("{e:#}"));
                }
                r
            }
        };
        eprintln!(
            "    {} done in {:.0} s",
            k.label,
            started.elapsed().as_secs_f64()
        );
        results.push(r);
    }
    let mut failures = Vec::new();
    if results.is_empty() {
        failures.push(format!(
            "TRACER_VM_KERNELS={only:?} names none of the kernels"
        ));
    }
    println!("vm-test results:");
    for r in &results {
        for (name, c) in &r.checks {
            match c {
                Ok(()) => println!("  PASS  {} ({}) {name}", r.label, r.release),
                Err(e) => {
                    println!("  FAIL  {} ({}) {name}: {e:#}", r.label, r.release);
                    failures.push(format!("{} {name}", r.label));
                }
            }
        }
        for n in r.notes.iter().chain(&r.remarks) {
            println!("  note  {} {n}", r.label);
        }
    }
    // The measurements, for `cargo xtask bench` to put in BENCHMARKS.md.
    let notes: String = results
        .iter()
        .flat_map(|r| {
            r.notes
                .iter()
                .map(move |n| format!("- {} ({}): {n}\n", r.label, r.release))
        })
        .collect();
    let _ = std::fs::write(util::target_dir().join(NOTES_FILE), notes);
    println!("vm-test summary (VM time: {}):", times.join(", "));
    print!("{}", summary_table(&results));
    if !failures.is_empty() {
        bail!(
            "{} VM check(s) failed: {}",
            failures.len(),
            failures.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_apt_and_markers() {
        let d = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n";
        assert_eq!(
            parse_depends(d).as_deref(),
            Some("linux-image-6.1.0-56-cloud-amd64")
        );
        let lines: Vec<String> = [
            "noise",
            "VMTEST-BEGIN count kprobe",
            "{\"backend\":\"kprobe\",\"functions\":[{\"function\":\"vfs_read\",\"calls\":2000}]}",
            "VMTEST-STDERR",
            "Using kprobe/kretprobe (perf kprobe PMU) for 1 functions (attached in 0.010 s, 10.00 ms per function).",
            "VMTEST-END count kprobe rc=0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let s = sections(&lines);
        let c = &s[&("count".to_string(), "kprobe".to_string())];
        assert_eq!(c.rc, Some(0));
        assert_eq!(c.stderr.len(), 1);
        check_count(c, "kprobe").unwrap();
        assert!(check_count(c, "fentry").is_err());
        assert_eq!(parse_using(&c.stderr[0]), Some((1, 0.010)));
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_the_debian_mirror() {
        let deb822 = "Types: deb\n\
            # http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
            URIs: http://deb.debian.org/debian\n\
            Suites: bookworm bookworm-updates\n\
            Components: main\n\
            \n\
            Types: deb\n\
            URIs: http://deb.debian.org/debian-security\n\
            Suites: bookworm-security\n";
        assert_eq!(
            parse_deb822_mirror(deb822).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        // Security first, a source stanza, a disabled one: none is the release's.
        let deb822 = "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n\n\
            Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n\
            Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: bookworm\n\n\
            Types: deb\nURIs: http://mirror.example/debian http://other.example/debian\nSuites: bookworm\n";
        assert_eq!(
            parse_deb822_mirror(deb822).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(parse_deb822_mirror("Types: deb\nSuites: bookworm\n"), None);
        let list = "# comment\n\
            deb http://security.debian.org/debian-security bookworm-security main\n\
            deb-src http://deb.debian.org/debian bookworm main\n\
            deb [arch=amd64 signed-by=/x.gpg] http://ftp.example/debian bookworm main contrib\n";
        assert_eq!(
            parse_one_line_mirror(list).as_deref(),
            Some("http://ftp.example/debian")
        );
        assert_eq!(
            parse_one_line_mirror("deb http://x/debian/ stable/updates main"),
            None
        );
    }

    #[test]
    fn offline_picks_the_cached_image_of_its_series() {
        let names = strings(&[
            "linux-image-6.12.57+deb12-cloud-amd64.vmlinuz",
            "linux-image-6.1.0-41-cloud-amd64.vmlinuz",
            "linux-image-6.1.0-57-cloud-amd64.vmlinuz",
            "linux-image-5.10.0-32-cloud-amd64.vmlinuz",
            "console-6.1.log",
        ]);
        let pick = |l| cached_image(&names, l);
        assert_eq!(
            pick("6.1").as_deref(),
            Some("linux-image-6.1.0-57-cloud-amd64.vmlinuz")
        );
        assert_eq!(
            pick("6.12").as_deref(),
            Some("linux-image-6.12.57+deb12-cloud-amd64.vmlinuz")
        );
        assert_eq!(
            pick("5.10").as_deref(),
            Some("linux-image-5.10.0-32-cloud-amd64.vmlinuz")
        );
        assert_eq!(pick("4.19"), None);
        let opts = apt_options(Path::new("/c/apt-bullseye"));
        assert!(opts.contains(&"Dir::Etc::sourcelist=/c/apt-bullseye/sources.list".to_string()));
        assert!(opts.contains(&"Dir::Etc::sourceparts=-".to_string()));
        assert!(opts.contains(&"Dir::State::Lists=/c/apt-bullseye/lists".to_string()));
    }

    #[test]
    fn a_missing_run_or_an_unfinished_vm_fails_by_name() {
        let lines = strings(&[
            "VMTEST-KERNEL 6.1.0-57-cloud-amd64",
            "VMTEST-PID count kprobe 77",
            "VMTEST-BEGIN count kprobe",
            r#"{"backend":"kprobe","functions":[{"function":"vfs_read","calls":2000}]}"#,
            "VMTEST-STDERR",
            "VMTEST-END count kprobe rc=0",
            "VMTEST-BOUND cost kprobe: tracer's end on SIGINT: pid 9 still running after 90 s, killed",
        ]);
        assert_eq!(fixture_pid(&lines, "count", "kprobe"), Some(77));
        assert_eq!(fixture_pid(&lines, "count", "fentry"), None);
        let r = judge("6.1", &lines, Err(anyhow::anyhow!("hung")));
        assert_eq!(r.release, "6.1.0-57-cloud-amd64");
        let result = |name: &str| {
            r.checks
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("no check {name}"))
                .1
                .as_ref()
                .map_err(|e| e.to_string())
        };
        assert_eq!(result("kprobe/kprobe count"), Ok(&()));
        assert_eq!(result("VM ran every test"), Err("hung".to_string()));
        let e = result("every VM step within its bound").unwrap_err();
        assert!(e.contains("cost kprobe: tracer's end on SIGINT"), "{e}");
        let e = result("kprobe/fentry count").unwrap_err();
        assert!(e.contains("no result for `count fentry`"), "{e}");
        // Every check is there, and everything but the one run failed.
        let empty = judge("6.1", &[], Ok(()));
        assert_eq!(
            empty.checks.iter().map(|c| &c.0).collect::<Vec<_>>(),
            r.checks.iter().map(|c| &c.0).collect::<Vec<_>>()
        );
        assert_eq!(r.checks.iter().filter(|c| c.1.is_ok()).count(), 1);
        // A cost round whose tracer failed is no measurement.
        let mut costs = strings(&[
            "VMTEST-COST none 1.0 2.0",
            "VMTEST-COST kprobe 3.0 4.5",
            "VMTEST-COST fentry 5.0 6.2",
        ]);
        let cost = |lines: &[String]| {
            let r = judge("6.1", lines, Ok(()));
            let c = r.checks.into_iter().find(|c| c.0 == "kprobe cost measured");
            c.unwrap().1.map_err(|e| e.to_string())
        };
        assert_eq!(cost(&costs), Ok(()));
        costs.push("VMTEST-COST-FAILED fentry tracer: EINVAL".into());
        assert_eq!(
            cost(&costs),
            Err(
                "tracer kprobe --backend fentry did not attach for a cost round: tracer: EINVAL"
                    .into()
            )
        );
        // Whether the VM finished, whether every wait kept its bound, 17 of
        // tracer kprobe, 28 of the other commands (2 of them in a PID
        // namespace, 1 a profile without frame pointers), 10 of nothing left
        // after SIGKILL.
        assert_eq!(r.checks.len(), 2 + 17 + 28 + KILLED.len());

        let table = summary_table(&[r, empty]);
        let rows: Vec<&str> = table.lines().collect();
        assert!(rows[0].starts_with("check ") && rows[0].ends_with("   6.1     6.1"));
        let count = rows
            .iter()
            .find(|l| l.starts_with("kprobe/kprobe count "))
            .unwrap();
        assert!(count.ends_with("  PASS    FAIL"), "{count}");
        let vm = rows
            .iter()
            .find(|l| l.starts_with("VM ran every test"))
            .unwrap();
        assert!(vm.ends_with("  FAIL    PASS"), "{vm}");
    }
}
