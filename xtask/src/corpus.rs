//! `cargo xtask strace-corpus`: strace's own test programs as the yardstick.
//!
//! The test programs of Debian's strace source package, the version installed
//! here, are built once (`./configure && make && make -C tests check TESTS=`)
//! into `<cache>/strace-tests/VERSION/` (`util::cache_root`) (rebuilt when that directory
//! is missing). The corpus is every program strace's suite runs on its own:
//! the names of `tests/gen_tests.in` (each test runs `../NAME` untraced first,
//! then under strace, without arguments unless a `QUIRK:PROG-ARGS:` gives
//! some), of `tests/pure_executables.list`, and of the hand-written
//! `NAME.test` scripts that run `../NAME` the same way, as the suite runs
//! them: from a fresh `tests/NAME.dir`, with `LC_ALL=C`, stdin and stdout
//! /dev/null, the descriptors the test opens (`9>>/dev/full`, `3>&1`), and
//! (here) a System V IPC namespace of its own, since two run at once.
//!
//! Each program runs under `strace -f -c -o FILE` and under `tracer syscalls
//! --json -o FILE --`, each run bounded in time, and every row (calls and
//! errors per syscall, per ABI) and the exit status are compared. tracer also
//! counts `exit` and `exit_group`, which strace cannot (they never return):
//! those rows are left out. A program that exits 77 under strace (the suite's
//! "skipped": a kernel feature missing, say) is not compared.
//!
//! Every difference that remains is listed with its reason in
//! [`DIFFERENCES`]; the check fails when a program differs and is not listed,
//! or is listed (for a reason other than `varies`) and is now equal.
use std::{
    collections::{BTreeMap, BTreeSet},
    io::Read as _,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::{debian, util};

/// The list of differences, relative to the repository root.
pub const DIFFERENCES: &str = "tracer/tests/strace-corpus-differences.tsv";

/// Longest one program may run under strace. The slowest runs about 13 s
/// (read-write) on 2 CPUs at a load of 12.
const STRACE_LIMIT: Duration = Duration::from_secs(60);

/// Longest the same program may run under tracer: [`TRACER_LIMIT`], or twice
/// its time under strace when that is longer (a program is rarely slower
/// under tracer than under strace, and a loaded machine slows both). A program
/// that waits forever for a child tracer does not reap is stopped here.
pub fn tracer_limit(under_strace: Duration) -> Duration {
    TRACER_LIMIT.max(under_strace * 2)
}

/// See [`tracer_limit`].
const TRACER_LIMIT: Duration = Duration::from_secs(30);

/// Programs run at once (each under strace, then under tracer).
const PARALLEL: usize = 2;

/// Why a program's counts differ. The check reads these names in
/// [`DIFFERENCES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// strace 6.1 does not know a syscall newer than itself: it names it
    /// `syscall_0xNNN`, tracer by its name (the counts agree).
    NewerSyscall,
    /// The program's counts vary from run to run (threads racing, loops
    /// that run for a fixed time, signals that may merge), under strace or
    /// under tracer: it may be equal in one run and not in the next.
    Varies,
    /// The one deliberate difference: a thread killed inside a syscall (by
    /// another thread's execve or exit_group) has its call (and error) counted
    /// by tracer, not by strace.
    KilledInSyscall,
    /// The program behaves differently when it is ptraced (strace is a
    /// ptracer; tracer is not): for example it calls ptrace itself.
    Ptrace,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::NewerSyscall,
        Reason::Varies,
        Reason::KilledInSyscall,
        Reason::Ptrace,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::NewerSyscall => "newer-syscall",
            Reason::Varies => "varies",
            Reason::KilledInSyscall => "killed-in-syscall",
            Reason::Ptrace => "ptrace",
        }
    }

    fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// One row's key: the ABI (`64`, `32`, `x32`) and the syscall's name.
pub type Key = (String, String);
/// Calls and errors per row.
pub type Table = BTreeMap<Key, (u64, u64)>;

/// The ABI of the rows after one of strace's section headings.
fn strace_section_abi(line: &str) -> Option<&'static str> {
    let l = line.trim();
    if !l.starts_with("System call usage summary for") {
        return None;
    }
    Some(if l.contains("x32") {
        "x32"
    } else if l.contains("32 bit") {
        "32"
    } else {
        "64"
    })
}

/// `strace -c` (`-o FILE`): `% time seconds usecs/call calls [errors] syscall`
/// rows; a second table after "System call usage summary for 32 bit mode:".
pub fn parse_strace(text: &str) -> Result<Table> {
    let mut t = Table::new();
    let mut abi = "64";
    for line in text.lines() {
        if let Some(a) = strace_section_abi(line) {
            abi = a;
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[0].starts_with('-') || f[0] == "%" || f[f.len() - 1] == "total" {
            continue;
        }
        let num = |s: &str| -> Result<u64> {
            s.parse()
                .with_context(|| format!("not a number {s:?} in strace's line {line:?}"))
        };
        let (calls, errors) = match f.len() {
            5 => (num(f[3])?, 0),
            6 => (num(f[3])?, num(f[4])?),
            _ => bail!("strace's line {line:?} has {} fields, not 5 or 6", f.len()),
        };
        let key = (abi.to_string(), f[f.len() - 1].to_string());
        if t.insert(key, (calls, errors)).is_some() {
            bail!("strace's table has {:?} twice", f[f.len() - 1]);
        }
    }
    Ok(t)
}

/// The last (summary) object of `tracer syscalls --json`: its rows, keyed by
/// `abi` (`64` when the field is absent) and `syscall`.
pub fn parse_tracer(text: &str) -> Result<Table> {
    let last = text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .context("tracer wrote no JSON")?;
    let v: serde_json::Value =
        serde_json::from_str(last).with_context(|| format!("tracer's JSON line {last:?}"))?;
    if v["type"] != "summary" {
        bail!("tracer's last JSON object is not the summary: {last}");
    }
    let rows = v["syscalls"]
        .as_array()
        .context("tracer's summary has no syscalls array")?;
    let mut t = Table::new();
    for r in rows {
        let name = r["syscall"]
            .as_str()
            .with_context(|| format!("a row without a name: {r}"))?;
        let abi = match &r["abi"] {
            serde_json::Value::String(s) => match s.as_str() {
                "x86_64" | "64" => "64".to_string(),
                "i386" | "32" => "32".to_string(),
                other => other.to_string(),
            },
            _ => "64".to_string(),
        };
        let calls = r["calls"]
            .as_u64()
            .with_context(|| format!("a row without calls: {r}"))?;
        let errors = r["errors"].as_u64().unwrap_or(0);
        t.insert((abi, name.to_string()), (calls, errors));
    }
    Ok(t)
}

/// One row that differs: strace's and tracer's (calls, errors); None when
/// that tool has no such row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDiff {
    pub key: Key,
    pub strace: Option<(u64, u64)>,
    pub tracer: Option<(u64, u64)>,
}

impl std::fmt::Display for RowDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |v: Option<(u64, u64)>| match v {
            None => "-".to_string(),
            Some((c, 0)) => format!("{c}"),
            Some((c, e)) => format!("{c}/{e}err"),
        };
        let (abi, name) = &self.key;
        let abi = if abi == "64" {
            String::new()
        } else {
            format!(" ({abi})")
        };
        write!(
            f,
            "{name}{abi} strace {} tracer {}",
            side(self.strace),
            side(self.tracer)
        )
    }
}

/// Rows that tracer counts and strace cannot: calls that never return.
fn never_returns(name: &str) -> bool {
    name == "exit" || name == "exit_group"
}

/// Every row whose calls or errors differ, tracer's `exit` and `exit_group`
/// left out.
pub fn compare(strace: &Table, tracer: &Table) -> Vec<RowDiff> {
    let keys: BTreeSet<&Key> = strace.keys().chain(tracer.keys()).collect();
    keys.into_iter()
        .filter(|k| !never_returns(&k.1))
        .filter_map(|k| {
            let (s, t) = (strace.get(k).copied(), tracer.get(k).copied());
            (s != t).then(|| RowDiff {
                key: k.clone(),
                strace: s,
                tracer: t,
            })
        })
        .collect()
}

/// The reason these differences look like, as a hint for whoever lists them:
/// only the mechanical ones (names) can be told from the rows.
pub fn guess(diffs: &[RowDiff]) -> Option<Reason> {
    if diffs.is_empty() {
        return None;
    }
    // strace's syscall_0xNNN rows matched, count for count, by tracer's named rows.
    let unnamed: Vec<_> = diffs
        .iter()
        .filter(|d| d.key.1.starts_with("syscall_0x") && d.tracer.is_none())
        .collect();
    let named: Vec<_> = diffs.iter().filter(|d| d.strace.is_none()).collect();
    if !unnamed.is_empty() && unnamed.len() == named.len() && unnamed.len() * 2 == diffs.len() {
        let mut a: Vec<_> = unnamed.iter().map(|d| d.strace).collect();
        let mut b: Vec<_> = named.iter().map(|d| d.tracer).collect();
        a.sort();
        b.sort();
        if a == b {
            return Some(Reason::NewerSyscall);
        }
    }
    None
}

/// A program of the corpus, its arguments and the files its test opens on
/// descriptors besides 0-2 (descriptor, path; opened for appending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub name: String,
    pub args: Vec<String>,
    pub fds: Vec<(i32, String)>,
}

/// The descriptors a test line opens: `N>>PATH` words, `N>&1` (stdout,
/// /dev/null here), and fd 3 on stdout for the tests of `clone_ptrace.test`,
/// which runs its program with `3>&1` (the program writes strace's expected
/// messages there).
fn fds_of(line: &str) -> Vec<(i32, String)> {
    let mut fds: Vec<(i32, String)> = line
        .split_whitespace()
        .filter_map(|w| {
            let (n, path) = w.split_once(">>").or_else(|| {
                let (n, to) = w.split_once(">&")?;
                (to == "1").then_some((n, "/dev/null"))
            })?;
            Some((n.parse().ok()?, path.to_string()))
        })
        .filter(|(n, p)| *n > 2 && !p.is_empty())
        .collect();
    if line.split_whitespace().nth(1) == Some("+clone_ptrace.test") && fds.is_empty() {
        fds.push((3, "/dev/null".to_string()));
    }
    fds
}

/// Whether a hand-written `NAME.test` runs `../NAME` as the generated tests
/// do: without arguments, by a bare `run_prog` (its redirections aside) or
/// `run_strace_match_diff`; the `run_prog` line, for its redirections.
fn runs_alone(script: &str) -> Option<&str> {
    script.lines().map(str::trim).find(|l| {
        l.starts_with("run_strace_match_diff")
            || l.split_whitespace().next() == Some("run_prog")
                && l.split_whitespace()
                    .nth(1)
                    .is_none_or(|w| w.starts_with('>') || w.contains(">>"))
    })
}

/// The programs `gen_tests.in` names (first word of each line) with the
/// arguments of a `"QUIRK:PROG-ARGS:..."`, then those of
/// `pure_executables.list`, then those of hand-written `NAME.test` scripts
/// (`scripts`: name, text) that run `../NAME` alone ([`runs_alone`]), each
/// program once.
pub fn corpus(gen_tests: &str, pure: &str, scripts: &[(String, String)]) -> Vec<Program> {
    let mut out: Vec<Program> = Vec::new();
    let mut seen = BTreeSet::new();
    for line in gen_tests.lines().chain(pure.lines()) {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let name = l.split_whitespace().next().unwrap_or_default().to_string();
        let args = match l.find("QUIRK:PROG-ARGS:") {
            Some(i) => l[i + "QUIRK:PROG-ARGS:".len()..]
                .split('"')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        };
        if seen.insert(name.clone()) {
            let fds = fds_of(l);
            out.push(Program { name, args, fds });
        }
    }
    for (name, text) in scripts {
        if let Some(line) = runs_alone(text) {
            if seen.insert(name.clone()) {
                let fds = fds_of(&format!("{name} {line}"));
                out.push(Program {
                    name: name.clone(),
                    args: Vec::new(),
                    fds,
                });
            }
        }
    }
    out
}

/// A listed difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub reason: Reason,
    pub why: String,
}

/// The differences file: `program<TAB>reason<TAB>why` lines, `#` comments.
pub fn parse_differences(text: &str) -> Result<BTreeMap<String, Listed>> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.splitn(3, '\t').collect();
        let [program, reason, why] = f[..] else {
            bail!(
                "{DIFFERENCES}:{}: not `program<TAB>reason<TAB>why`: {line:?}",
                i + 1
            );
        };
        let reason = Reason::parse(reason.trim()).with_context(|| {
            format!(
                "{DIFFERENCES}:{}: unknown reason {reason:?} (one of: {})",
                i + 1,
                Reason::ALL.map(Reason::name).join(", ")
            )
        })?;
        if why.trim().is_empty() {
            bail!("{DIFFERENCES}:{}: {program} has no explanation", i + 1);
        }
        let listed = Listed {
            reason,
            why: why.trim().to_string(),
        };
        if out.insert(program.trim().to_string(), listed).is_some() {
            bail!("{DIFFERENCES}:{}: {program} is listed twice", i + 1);
        }
    }
    Ok(out)
}

/// What one program did under both tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every row and the exit status equal.
    Equal,
    /// Exit 77 under strace: the suite's "skipped", not compared.
    Skipped,
    /// Rows or the exit status differ, or a run hit the time bound or
    /// failed: one line each, and the reason they look like (a hint for
    /// whoever lists them: [`guess`]).
    Differs(Vec<String>, Option<Reason>),
}

/// How a bounded run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Killed at the bound (seconds).
    TimedOut(u64),
}

impl Exit {
    /// A death by signal N as the exit code 128+N: strace dies of the
    /// signal its tracee died of, tracer exits with 128+N as a shell does.
    fn normal(&self) -> Exit {
        match self {
            Exit::Signal(n) => Exit::Code(128 + n),
            other => other.clone(),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit {c}"),
            Exit::Signal(s) => write!(f, "signal {s}"),
            Exit::TimedOut(secs) => write!(f, "over {secs} s"),
        }
    }
}

/// Judge one program from its two runs: `strace`'s exit and table, tracer's.
pub fn judge(strace: (&Exit, Result<Table>), tracer: (&Exit, Result<Table>)) -> Outcome {
    if *strace.0 == Exit::Code(77) {
        return Outcome::Skipped;
    }
    let mut lines = Vec::new();
    let mut hint = None;
    if strace.0.normal() != tracer.0.normal() {
        lines.push(format!("strace {}, tracer {}", strace.0, tracer.0));
    }
    match (strace.1, tracer.1) {
        (Ok(s), Ok(t)) => {
            let diffs = compare(&s, &t);
            hint = hint.or(guess(&diffs));
            lines.extend(diffs.iter().map(|d| d.to_string()));
        }
        (s, t) => {
            if let Err(e) = s {
                lines.push(format!("strace's table: {e:#}"));
            }
            if let Err(e) = t {
                lines.push(format!("tracer's table: {e:#}"));
            }
        }
    }
    if lines.is_empty() {
        Outcome::Equal
    } else {
        Outcome::Differs(lines, hint)
    }
}

/// The check's verdict: failures (each a line) given each program's outcome
/// and the listed differences.
pub fn verdict(
    outcomes: &BTreeMap<String, Outcome>,
    listed: &BTreeMap<String, Listed>,
) -> Vec<String> {
    let mut fails = Vec::new();
    for (name, o) in outcomes {
        match (o, listed.get(name)) {
            (Outcome::Differs(lines, hint), None) => fails.push(format!(
                "{name} differs and is not listed in {DIFFERENCES}{}: {}",
                hint.map_or(String::new(), |r| format!(" (looks like {})", r.name())),
                lines.join("; ")
            )),
            (Outcome::Equal, Some(l)) if l.reason != Reason::Varies => fails.push(format!(
                "{name} is listed in {DIFFERENCES} ({}) but is now equal: remove it",
                l.reason.name()
            )),
            _ => {}
        }
    }
    for name in listed.keys() {
        if !outcomes.contains_key(name) {
            fails.push(format!(
                "{name} is listed in {DIFFERENCES} but is no program of the corpus"
            ));
        }
    }
    fails
}

/// The installed strace's Debian version (`6.1-0.1`).
fn strace_version() -> Result<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "strace"])
        .output()
        .context("running dpkg-query")?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || v.is_empty() {
        bail!("strace is not installed (cargo xtask setup installs it)");
    }
    Ok(v)
}

/// This machine's Debian suite (`bookworm`), from /etc/os-release.
fn suite() -> Result<String> {
    let text = std::fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|s| s.trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .context("/etc/os-release names no VERSION_CODENAME")
}

/// Runs `cmd` with its output in `log`; on failure, an error with the log's
/// last lines.
fn logged(cmd: &mut Command, log: &Path) -> Result<()> {
    eprintln!("    $ {} (output in {})", util::show(cmd), log.display());
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let status = cmd
        .stdout(f.try_clone()?)
        .stderr(f)
        .status()
        .with_context(|| format!("cannot run {}", util::show(cmd)))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "`{}` failed ({status}); the end of {}:\n{}",
            util::show(cmd),
            log.display(),
            tail.join("\n")
        );
    }
    Ok(())
}

/// strace's built `tests/` directory for the installed version, built into
/// `<cache>/strace-tests/VERSION/` first when missing (the directory
/// appears only once a build is complete).
pub fn tests_dir() -> Result<PathBuf> {
    let version = strace_version()?;
    let cache = util::cache_root().join("strace-tests");
    let done = cache.join(&version);
    let tests = done.join("strace").join("tests");
    if tests.join("gen_tests.in").is_file() {
        return Ok(tests);
    }
    let suite = suite()?;
    let mirror = debian::mirror();
    util::step(&format!(
        "building strace {version}'s test programs (Debian's source package from {mirror}, \
         {suite}) into {}: about 10 minutes on 2 cores",
        done.display()
    ));
    let apt_dir = cache.join("apt");
    for d in ["lists/partial", "apt/archives/partial"] {
        std::fs::create_dir_all(apt_dir.join(d))?;
    }
    std::fs::write(
        apt_dir.join("sources.list"),
        format!(
            "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} {suite} main\n"
        ),
    )?;
    std::fs::write(apt_dir.join("status"), "")?;
    let partial = cache.join(format!("{version}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    let mut update = debian::apt(&apt_dir, "apt-get");
    update.args(["update", "--error-on=any"]);
    eprintln!("    $ apt-get ... update (a deb-src list of its own)");
    debian::output(&mut update).with_context(|| {
        format!(
            "strace's test programs are not cached in {} and the source package cannot be fetched",
            done.display()
        )
    })?;
    eprintln!("    $ apt-get ... source --download-only strace={version}");
    debian::output(
        debian::apt(&apt_dir, "apt-get")
            .args(["source", "--download-only"])
            .arg(format!("strace={version}"))
            .current_dir(&partial),
    )?;
    let dsc = std::fs::read_dir(&partial)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "dsc"))
        .context("apt-get source left no .dsc")?;
    let log = partial.join("build.log");
    // The archive's signature was checked by apt against the Release file.
    logged(
        Command::new("dpkg-source")
            .args(["--no-check", "-x"])
            .arg(&dsc)
            .arg("strace")
            .current_dir(&partial),
        &log,
    )?;
    let src = partial.join("strace");
    // Only the test programs are used (the installed strace is the one
    // compared): mpers (the m32/mx32 decoders) are not built. strace's own
    // copy of the kernel's headers: bookworm's linux-libc-dev (6.1.1xx) renamed
    // fields strace 6.1 uses (`nexthop_grp.resvd1`), and newer compilers warn
    // where this one did not, so -Werror is off.
    logged(
        Command::new("./configure")
            .args([
                "--enable-mpers=no",
                "--enable-bundled=yes",
                "--disable-gcc-Werror",
            ])
            .current_dir(&src),
        &log,
    )?;
    logged(Command::new("make").arg("-j2").current_dir(&src), &log)?;
    logged(
        Command::new("make")
            .args(["-j2", "-C", "tests", "check", "TESTS="])
            .current_dir(&src),
        &log,
    )?;
    std::fs::rename(&partial, &done)?;
    Ok(tests)
}

/// Runs `cmd` in a process group of its own, with stdin and stdout
/// /dev/null; kills the group after `limit`. Returns how it ended and its
/// stderr.
fn bounded(cmd: &mut Command, limit: Duration) -> Result<(Exit, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot run {}", util::show(cmd)))?;
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let start = Instant::now();
    let exit = loop {
        if let Some(st) = child.try_wait()? {
            use std::os::unix::process::ExitStatusExt as _;
            break match (st.code(), st.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                _ => Exit::Code(-1),
            };
        }
        if start.elapsed() > limit {
            // SAFETY: kill(2) on the process group this child leads.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break Exit::TimedOut(limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // A process left in the group (a child that outlived its parent) holds
    // stderr open; kill the group so the reader ends.
    // SAFETY: as above; ESRCH when the group is empty.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let stderr = reader.join().unwrap_or_default();
    Ok((exit, stderr))
}

/// A fresh `tests/NAME.dir`, as the suite's init.sh makes.
fn fresh_dir(tests: &Path, name: &str) -> Result<PathBuf> {
    let dir = tests.join(format!("{name}.dir"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// What one program did: its outcome, and each tool's elapsed time and exit.
struct Run {
    outcome: Outcome,
    secs: [f64; 2],
    exits: [Option<Exit>; 2],
}

/// Run one program under strace and under tracer.
fn run_one(tests: &Path, tracer: &Path, out: &Path, p: &Program) -> Result<Run> {
    let prog = format!("../{}", p.name);
    let s_file = out.join(format!("{}.strace", p.name));
    let t_file = out.join(format!("{}.tracer.json", p.name));
    let _ = std::fs::remove_file(&s_file);
    let _ = std::fs::remove_file(&t_file);
    let files = p
        .fds
        .iter()
        .map(|(n, path)| {
            let f = std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .with_context(|| format!("opening {path} for {}'s fd {n}", p.name))?;
            Ok((*n, f))
        })
        .collect::<Result<Vec<_>>>()?;
    let moves: Vec<(i32, i32)> = files
        .iter()
        .map(|(n, f)| (std::os::fd::AsRawFd::as_raw_fd(f), *n))
        .collect();
    let env = |c: &mut Command, dir: &Path| {
        c.current_dir(dir)
            .env("LC_ALL", "C")
            .env("STRACE_EXE", "/usr/bin/strace")
            .env_remove("RUST_LOG");
        let moves = moves.clone();
        // SAFETY: only async-signal-safe calls (dup2, unshare) between fork and exec.
        unsafe {
            c.pre_exec(move || {
                for &(from, to) in &moves {
                    if libc::dup2(from, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // System V IPC of its own: programs of the corpus use fixed keys
                // (ipc_shm and its variants the same one), and two run at once.
                if libc::unshare(libc::CLONE_NEWIPC) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    };

    let dir = fresh_dir(tests, &p.name)?;
    let mut c = Command::new("strace");
    c.args(["-f", "-c", "-o"])
        .arg(&s_file)
        .arg("--")
        .arg(&prog)
        .args(&p.args);
    env(&mut c, &dir);
    let t0 = Instant::now();
    let (s_exit, s_err) = bounded(&mut c, STRACE_LIMIT)?;
    let s_time = t0.elapsed();
    let s_secs = s_time.as_secs_f64();
    if s_exit == Exit::Code(77) {
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(Run {
            outcome: Outcome::Skipped,
            secs: [s_secs, 0.0],
            exits: [Some(s_exit), None],
        });
    }
    let s_table = std::fs::read_to_string(&s_file)
        .with_context(|| format!("strace wrote no table ({s_exit}): {}", s_err.trim()))
        .and_then(|t| parse_strace(&t));

    let dir = fresh_dir(tests, &p.name)?;
    let mut c = Command::new(tracer);
    c.args(["syscalls", "--all", "--json", "-o"])
        .arg(&t_file)
        .arg("--")
        .arg(&prog)
        .args(&p.args);
    env(&mut c, &dir);
    let t0 = Instant::now();
    let (t_exit, t_err) = bounded(&mut c, tracer_limit(s_time))?;
    let t_secs = t0.elapsed().as_secs_f64();
    let t_table = if let Exit::TimedOut(secs) = t_exit {
        Err(anyhow::anyhow!("none: tracer ran over {secs} s"))
    } else {
        std::fs::read_to_string(&t_file)
            .with_context(|| {
                format!(
                    "tracer wrote no table ({t_exit}): {}",
                    t_err.lines().last().unwrap_or("").trim()
                )
            })
            .and_then(|t| parse_tracer(&t))
    };
    let _ = std::fs::remove_dir_all(&dir);
    drop(files);
    Ok(Run {
        outcome: judge((&s_exit, s_table), (&t_exit, t_table)),
        secs: [s_secs, t_secs],
        exits: [Some(s_exit), Some(t_exit)],
    })
}

/// The whole check: build (or find) the corpus, run every program under both
/// tools, compare, print the figure, and fail on any difference not listed
/// or any listing no longer true. `tracer` is the binary to run.
pub fn run(tracer: &Path) -> Result<()> {
    let tests = tests_dir()?;
    let read = |f: &str| {
        std::fs::read_to_string(tests.join(f))
            .with_context(|| format!("reading {}", tests.join(f).display()))
    };
    let mut scripts = Vec::new();
    for e in std::fs::read_dir(&tests)? {
        let path = e?.path();
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        if let Some(name) = file.strip_suffix(".test") {
            if !name.ends_with(".gen") {
                scripts.push((name.to_string(), std::fs::read_to_string(&path)?));
            }
        }
    }
    scripts.sort();
    let all = corpus(
        &read("gen_tests.in")?,
        &read("pure_executables.list")?,
        &scripts,
    );
    let (programs, missing): (Vec<Program>, Vec<Program>) =
        all.into_iter().partition(|p| tests.join(&p.name).is_file());
    let listed_path = util::root().join(DIFFERENCES);
    let listed = parse_differences(
        &std::fs::read_to_string(&listed_path)
            .with_context(|| format!("reading {}", listed_path.display()))?,
    )?;
    let only: Option<BTreeSet<String>> = std::env::var("TRACER_CORPUS_ONLY")
        .ok()
        .map(|s| s.split(',').map(str::to_string).collect());
    if let Some(o) = &only {
        let unknown: Vec<&str> = o
            .iter()
            .filter(|n| !programs.iter().any(|p| &p.name == *n))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            bail!(
                "TRACER_CORPUS_ONLY names no program of the corpus: {}",
                unknown.join(", ")
            );
        }
    }
    let programs: Vec<Program> = programs
        .into_iter()
        .filter(|p| only.as_ref().is_none_or(|o| o.contains(&p.name)))
        .collect();
    let out = util::target_dir().join("strace-corpus");
    std::fs::create_dir_all(&out)?;
    util::step(&format!(
        "strace's test programs: {} under `strace -f -c` and `{} syscalls --json --`, \
         {PARALLEL} at a time, each run bounded (strace {} s, tracer {} s or twice strace's \
         time) ({} names of the suite are tests without a program of that name; tables and \
         summary.tsv in {})",
        programs.len(),
        tracer.display(),
        STRACE_LIMIT.as_secs(),
        TRACER_LIMIT.as_secs(),
        missing.len(),
        out.display()
    ));
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<String, Outcome>> = Mutex::new(BTreeMap::new());
    let times: Mutex<Vec<(f64, String)>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let summary: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(p) = programs.get(i) else { break };
                match run_one(&tests, tracer, &out, p) {
                    Ok(Run {
                        outcome: o,
                        secs,
                        exits,
                    }) => {
                        if let Outcome::Differs(lines, hint) = &o {
                            let mark = match (listed.get(&p.name), hint) {
                                (Some(l), _) => format!("listed: {}", l.reason.name()),
                                (None, Some(h)) => format!("NOT LISTED, looks like {}", h.name()),
                                (None, None) => "NOT LISTED".to_string(),
                            };
                            eprintln!("    {} differs ({mark}): {}", p.name, lines.join("; "));
                        }
                        times
                            .lock()
                            .unwrap()
                            .push((secs[0] + secs[1], p.name.clone()));
                        let line = match &o {
                            Outcome::Equal => "equal".to_string(),
                            Outcome::Skipped => "skipped (exit 77 under strace)".to_string(),
                            Outcome::Differs(lines, _) => format!("differs\t{}", lines.join("; ")),
                        };
                        summary.lock().unwrap().push(format!(
                            "{}\t{:.2}\t{:.2}\t{}\t{}\t{line}",
                            p.name,
                            secs[0],
                            secs[1],
                            exits[0].as_ref().map_or("-".into(), |e| e.to_string()),
                            exits[1].as_ref().map_or("-".into(), |e| e.to_string()),
                        ));
                        results.lock().unwrap().insert(p.name.clone(), o);
                    }
                    Err(e) => errors.lock().unwrap().push(format!("{}: {e:#}", p.name)),
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut summary = summary.into_inner().unwrap();
    summary.sort();
    summary.extend(
        missing
            .iter()
            .map(|p| format!("{}\t\t\t\t\tno program of this name", p.name)),
    );
    std::fs::write(
        out.join("summary.tsv"),
        format!(
            "# program\tstrace s\ttracer s\tstrace's end\ttracer's end\toutcome\n{}\n",
            summary.join("\n")
        ),
    )?;
    let errors = errors.into_inner().unwrap();
    let mut times = times.into_inner().unwrap();
    times.sort_by(|a, b| b.0.total_cmp(&a.0));
    let count = |f: fn(&Outcome) -> bool| results.values().filter(|o| f(o)).count();
    let equal = count(|o| *o == Outcome::Equal);
    let skipped = count(|o| *o == Outcome::Skipped);
    let compared = results.len() - skipped;
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, o) in &results {
        if let Outcome::Differs(..) = o {
            let r = listed.get(name).map_or("NOT LISTED", |l| l.reason.name());
            by_reason.entry(r).or_default().push(name);
        }
    }
    for (r, names) in &by_reason {
        eprintln!("    {r}: {} ({})", names.len(), names.join(" "));
    }
    eprintln!(
        "    slowest: {}",
        times
            .iter()
            .take(5)
            .map(|(t, n)| format!("{n} {t:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "strace corpus: {equal} of {compared} programs equal ({skipped} skipped: exit 77 \
         under strace) in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    let mut fails = errors;
    let listed_here: BTreeMap<String, Listed> = match &only {
        Some(o) => listed
            .clone()
            .into_iter()
            .filter(|(n, _)| o.contains(n))
            .collect(),
        None => listed.clone(),
    };
    let mut considered = results.clone();
    // A listed program that skips here (exit 77) is neither equal nor different.
    considered.retain(|_, o| *o != Outcome::Skipped);
    let skipped_names: BTreeSet<&String> = results
        .iter()
        .filter(|(_, o)| **o == Outcome::Skipped)
        .map(|(n, _)| n)
        .collect();
    let listed_run: BTreeMap<String, Listed> = listed_here
        .into_iter()
        .filter(|(n, _)| !skipped_names.contains(n))
        .collect();
    fails.extend(verdict(&considered, &listed_run));
    if !fails.is_empty() {
        for f in &fails {
            eprintln!("    FAIL: {f}");
        }
        bail!(
            "{} of the strace corpus's programs are not as {DIFFERENCES} says",
            fails.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(abi: &str, n: &str) -> Key {
        (abi.to_string(), n.to_string())
    }

    #[test]
    fn parses_strace_tables_with_a_32_bit_section() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000006           1         4           mmap
 40.00    0.000004           4         1         1 access
  0.00    0.000000           0         2           syscall_0x1c3
------ ----------- ----------- --------- --------- ----------------
100.00    0.000010           1         7         1 total
System call usage summary for 32 bit mode:
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
100.00    0.000001           1       100           getpid
------ ----------- ----------- --------- --------- ----------------
100.00    0.000001           1       100           total
";
        let t = parse_strace(text).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t[&key("64", "mmap")], (4, 0));
        assert_eq!(t[&key("64", "access")], (1, 1));
        assert_eq!(t[&key("64", "syscall_0x1c3")], (2, 0));
        assert_eq!(t[&key("32", "getpid")], (100, 0));
        assert!(parse_strace(" 1.0 0.1 1 x y z w syscall\n").is_err());
        assert!(parse_strace(" 1.0 0.1 1 many mmap\n").is_err());
        assert!(parse_strace("").unwrap().is_empty());
    }

    #[test]
    fn parses_tracers_summary_and_its_abi_field() {
        let text = r#"{"type":"interval","syscalls":[{"syscall":"read","nr":0,"calls":9,"errors":0}]}
{"type":"summary","syscalls":[{"syscall":"read","nr":0,"calls":3,"errors":1},{"syscall":"exit_group","nr":231,"calls":1,"errors":null},{"syscall":"getpid","nr":20,"calls":5,"errors":0,"abi":"i386"}]}
"#;
        let t = parse_tracer(text).unwrap();
        assert_eq!(t[&key("64", "read")], (3, 1));
        assert_eq!(t[&key("64", "exit_group")], (1, 0));
        assert_eq!(t[&key("32", "getpid")], (5, 0));
        assert!(parse_tracer("").is_err());
        assert!(parse_tracer(r#"{"type":"interval","syscalls":[]}"#).is_err());
        assert!(parse_tracer("not json").is_err());
    }

    #[test]
    fn compares_every_row_but_the_calls_that_never_return() {
        let s: Table = [(key("64", "read"), (3, 1)), (key("64", "close"), (2, 0))].into();
        let mut t = s.clone();
        t.insert(key("64", "exit_group"), (1, 0));
        t.insert(key("64", "exit"), (2, 0));
        assert!(compare(&s, &t).is_empty());
        t.insert(key("64", "read"), (3, 0));
        t.remove(&key("64", "close"));
        t.insert(key("32", "getpid"), (1, 0));
        let d = compare(&s, &t);
        assert_eq!(
            d.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            [
                "getpid (32) strace - tracer 1",
                "close strace 2 tracer -",
                "read strace 3/1err tracer 3"
            ]
        );
    }

    #[test]
    fn guesses_the_mechanical_reasons() {
        let d = |abi: &str, n: &str, s: Option<(u64, u64)>, t: Option<(u64, u64)>| RowDiff {
            key: key(abi, n),
            strace: s,
            tracer: t,
        };
        assert_eq!(guess(&[]), None);
        let newer = [
            d("64", "syscall_0x1c3", Some((2, 1)), None),
            d("64", "cachestat", None, Some((2, 1))),
        ];
        assert_eq!(guess(&newer), Some(Reason::NewerSyscall));
        let counts_too = [
            d("64", "syscall_0x1c3", Some((2, 1)), None),
            d("64", "cachestat", None, Some((3, 1))),
        ];
        assert_eq!(guess(&counts_too), None);
        assert_eq!(guess(&[d("64", "read", Some((1, 0)), Some((2, 0)))]), None);
    }

    #[test]
    fn the_corpus_is_gen_tests_names_then_pure_executables() {
        let gen = "# comment\n\n_newselect\naccept\t-a22\n\
                   ioctl_seccomp\ttest_pidns -etrace=ioctl \"QUIRK:PROG-ARGS:256 42\" -a48\n\
                   accept\t-a23\n\
                   _newselect-P\t -e trace=_newselect -P /dev/full 9>>/dev/full\n\
                   clone_parent +clone_ptrace.test\n";
        let pure = "# Executables\naccept\nbrk\n";
        let script = |n: &str, t: &str| (n.to_string(), t.to_string());
        let scripts = [
            script(
                "nsyscalls",
                ". init.sh\nrun_strace_match_diff -e trace=none\n",
            ),
            script(
                "poll-P",
                "run_prog > /dev/null 9>>/dev/full\nrun_strace -P x\n",
            ),
            script("pc", "run_prog > /dev/null 3>&1\n"),
            script("kill_child", "run_prog_skip_if_failed date\nrun_prog\n"),
            script(
                "qual_signal",
                "\trun_prog \"../$NAME\" \"$@\" > /dev/null\n",
            ),
            script("delay", "run_strace -r ../delay 4\n"),
            script("brk", "run_prog\n"),
        ];
        let c = corpus(gen, pure, &scripts);
        let names: Vec<&str> = c.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "_newselect",
                "accept",
                "ioctl_seccomp",
                "_newselect-P",
                "clone_parent",
                "brk",
                "nsyscalls",
                "poll-P",
                "pc",
                "kill_child"
            ]
        );
        assert_eq!(c[7].fds, [(9, "/dev/full".to_string())]);
        assert_eq!(c[8].fds, [(3, "/dev/null".to_string())]);
        assert_eq!(c[2].args, ["256", "42"]);
        assert!(c[0].args.is_empty() && c[0].fds.is_empty());
        assert_eq!(c[3].fds, [(9, "/dev/full".to_string())]);
        assert_eq!(c[4].fds, [(3, "/dev/null".to_string())]);
    }

    #[test]
    fn the_repositorys_differences_list_reads() {
        let text = include_str!("../../tracer/tests/strace-corpus-differences.tsv");
        let l = parse_differences(text).unwrap();
        assert!(l.len() > 10, "{l:?}");
        assert_eq!(l["clone_parent"].reason, Reason::Varies);
    }

    #[test]
    fn reads_the_differences_list_strictly() {
        let l = parse_differences("# x\nclone_parent\tvaries\twaits for its child\n\n").unwrap();
        assert_eq!(l["clone_parent"].reason, Reason::Varies);
        assert_eq!(l["clone_parent"].why, "waits for its child");
        assert!(parse_differences("a\tnope\twhy\n").is_err());
        assert!(parse_differences("a ptrace why\n").is_err());
        assert!(parse_differences("a\tptrace\t \n").is_err());
        assert!(parse_differences("a\tptrace\tx\na\tvaries\ty\n").is_err());
        assert!(
            parse_differences("a\treap\tx\n").is_err(),
            "no such reason any more"
        );
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.name()), Some(r));
        }
    }

    #[test]
    fn judges_runs_and_keeps_the_list_honest() {
        let t: Table = [(key("64", "read"), (1, 0))].into();
        let ok = Exit::Code(0);
        assert_eq!(
            judge((&Exit::Code(77), Ok(t.clone())), (&ok, Ok(t.clone()))),
            Outcome::Skipped
        );
        assert_eq!(
            judge((&ok, Ok(t.clone())), (&ok, Ok(t.clone()))),
            Outcome::Equal
        );
        assert_eq!(
            judge((&ok, Ok(t.clone())), (&Exit::Code(1), Ok(t.clone()))),
            Outcome::Differs(vec!["strace exit 0, tracer exit 1".into()], None)
        );
        let timed = judge(
            (&ok, Ok(t.clone())),
            (&Exit::TimedOut(30), Err(anyhow::anyhow!("none"))),
        );
        let Outcome::Differs(lines, hint) = &timed else {
            panic!("{timed:?}")
        };
        assert_eq!(*hint, None);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0], "strace exit 0, tracer over 30 s");
        assert_eq!(
            judge(
                (&Exit::Signal(9), Ok(t.clone())),
                (&Exit::Code(137), Ok(t.clone()))
            ),
            Outcome::Equal
        );
        assert_eq!(tracer_limit(Duration::from_millis(30)), TRACER_LIMIT);
        assert_eq!(
            tracer_limit(Duration::from_secs(20)),
            Duration::from_secs(40)
        );

        let outcomes: BTreeMap<String, Outcome> = [
            ("same".to_string(), Outcome::Equal),
            ("racy".to_string(), Outcome::Equal),
            ("fixed".to_string(), Outcome::Equal),
            (
                "known".to_string(),
                Outcome::Differs(vec!["x".into()], None),
            ),
            (
                "new".to_string(),
                Outcome::Differs(vec!["read strace 1 tracer 2".into()], Some(Reason::Varies)),
            ),
        ]
        .into();
        let l = |r| Listed {
            reason: r,
            why: "because".into(),
        };
        let listed: BTreeMap<String, Listed> = [
            ("racy".to_string(), l(Reason::Varies)),
            ("fixed".to_string(), l(Reason::NewerSyscall)),
            ("known".to_string(), l(Reason::Ptrace)),
            ("gone".to_string(), l(Reason::Ptrace)),
        ]
        .into();
        let v = verdict(&outcomes, &listed);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(
            v[0].starts_with("fixed is listed") && v[0].contains("now equal"),
            "{v:?}"
        );
        assert!(v[1].starts_with("new differs and is not listed"), "{v:?}");
        assert!(
            v[1].contains("(looks like varies): read strace 1 tracer 2"),
            "{v:?}"
        );
        assert!(v[2].starts_with("gone is listed") && v[2].contains("no program"));
    }
}
