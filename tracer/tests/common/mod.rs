//! Shared helpers of the end-to-end tests: they run the real `tracer` binary,
//! as root, against the `fixture` program (crate tracer-fixtures).
//!
//! These tests need root and BPF. They do not skip: without them they fail
//! with a message saying so, because CI has both.
#![allow(dead_code)]

pub mod kernel;

use std::{
    fs::File,
    io::{BufRead as _, BufReader, Write as _},
    os::fd::AsRawFd as _,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

pub fn tracer() -> Command {
    require_root();
    Command::new(env!("CARGO_BIN_EXE_tracer"))
}

/// The fixture binary, built next to the test's own target directory.
pub fn fixture_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/e2e-xxxx -> target/<profile>/fixture
    let path = exe.parent().unwrap().parent().unwrap().join("fixture");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p tracer-fixtures` (cargo xtask test does)",
        path.display()
    );
    path
}

pub fn fixture() -> Command {
    Command::new(fixture_path())
}

pub fn require_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the end-to-end tests load eBPF programs and must run as root (CI does)"
    );
}

/// Tests that inspect what is loaded in the kernel take this lock exclusively;
/// every other test that runs tracer holds it shared, so they never overlap.
pub struct KernelLock(File);

fn lock(op: i32) -> KernelLock {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("tracer-e2e.lock"))
        .unwrap();
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), op) }, 0);
    KernelLock(f)
}

pub fn shared_lock() -> KernelLock {
    lock(libc::LOCK_SH)
}

pub fn exclusive_lock() -> KernelLock {
    lock(libc::LOCK_EX)
}

/// Run to completion, with a time limit.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_output(child, limit)
}

/// tracer processes started by `start_attached` and not yet reaped, with the
/// test thread that started them: a test that panics before reaping its
/// tracer kills it (a system-wide tracer left behind would count, and hold
/// its programs, for as long as the machine runs, and fail every later check
/// that nothing is loaded).
static UNREAPED: std::sync::Mutex<Vec<(std::thread::ThreadId, u32)>> =
    std::sync::Mutex::new(Vec::new());

fn unreaped() -> std::sync::MutexGuard<'static, Vec<(std::thread::ThreadId, u32)>> {
    UNREAPED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Remember `pid` until it is reaped; the first call installs the panic hook
/// that kills the panicking thread's unreaped processes.
fn own_until_reaped(pid: u32) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let me = std::thread::current().id();
            for (_, pid) in unreaped().iter().filter(|(t, _)| *t == me) {
                // Only if the pid is still a tracer child of ours (one reaped
                // elsewhere may have been reused).
                let ours = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| {
                        s[s.rfind(')')? + 2..]
                            .split(' ')
                            .nth(1)?
                            .parse::<u32>()
                            .ok()
                    })
                    == Some(std::process::id())
                    && std::fs::read_link(format!("/proc/{pid}/exe")).ok()
                        == std::fs::canonicalize(env!("CARGO_BIN_EXE_tracer")).ok();
                if ours {
                    unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
                }
            }
            default(info);
        }));
    });
    unreaped().push((std::thread::current().id(), pid));
}

pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    // Read both pipes while the child runs: a child whose output outgrows a
    // pipe buffer would otherwise block forever.
    fn drain<R: std::io::Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "timed out after {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.join().unwrap()),
                String::from_utf8_lossy(&err.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    unreaped().retain(|&(_, pid)| pid != child.id());
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// A fixture started with `--wait`: it has printed `ready` and waits for `go()`.
pub struct Waiting {
    pub child: Child,
}

impl Waiting {
    pub fn start(args: &[&str]) -> Self {
        let mut child = fixture()
            .arg("--wait")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn fixture");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Waiting { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn go(&mut self) {
        self.child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"go\n")
            .unwrap();
    }

    pub fn wait(mut self) {
        let st = self.child.wait().unwrap();
        assert!(st.success(), "fixture failed: {st}");
    }
}

/// Start tracer and wait until its stderr says it is attached ("Tracing ...").
/// Returns the child and the lines of stderr read so far.
#[expect(
    clippy::zombie_processes,
    reason = "the child is returned to the caller, who waits for it"
)]
pub fn start_attached(cmd: &mut Command) -> (Child, BufReader<std::process::ChildStderr>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tracer");
    own_until_reaped(child.id());
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            let out = child.wait_with_output().unwrap();
            panic!(
                "tracer exited before attaching: {}\nstderr: {seen}\nstdout: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            );
        }
        seen.push_str(&line);
        if line.starts_with("Tracing") {
            return (child, err);
        }
    }
}

/// `tracer trace -e geteuid --buffer-size 4K EXTRA -p FIXTURE` while the
/// fixture makes `n` geteuid calls, with tracer stopped (SIGSTOP) for as long
/// as the fixture runs: its 4K ring buffer must overflow, deterministically.
pub fn overflowing_trace(extra: &[&str], n: u64) -> std::process::Output {
    let fx = Waiting::start(&["geteuid", &n.to_string()]);
    let pid = fx.pid().to_string();
    held_reader(
        tracer()
            .args(["trace", "-e", "geteuid", "--buffer-size", "4K"])
            .args(extra)
            .args(["-p", &pid])
            .env_remove("RUST_LOG"),
        fx,
    )
}

/// Start `cmd` (a tracer attached to the waiting fixture `fx`), hold it with
/// SIGSTOP while the fixture does its work, then let it go and wait for it:
/// whatever it had to read while stopped piled up meanwhile, whatever the
/// machine's speed. The output's stderr holds all of tracer's stderr.
pub fn held_reader(cmd: &mut Command, mut fx: Waiting) -> std::process::Output {
    let (child, err) = start_attached(cmd);
    // start_attached read stderr up to the "Tracing" line: read the rest as it comes.
    let rest = std::thread::spawn(move || {
        let mut rest = Vec::new();
        let mut err = err;
        let _ = std::io::Read::read_to_end(&mut err, &mut rest);
        rest
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
    fx.go();
    fx.wait();
    unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
    let mut out = wait_output(child, Duration::from_secs(120));
    out.stderr.extend(rest.join().unwrap());
    out
}

/// JSON objects, one per line.
/// Where the report of a run with `args` is: on stderr when tracer launched a
/// command (`-- CMD`: the command owns stdout), on stdout otherwise.
pub fn report<'a>(args: &[&str], out: &'a Output) -> &'a [u8] {
    if args.contains(&"--") {
        &out.stderr
    } else {
        &out.stdout
    }
}

pub fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l}: {e}")))
        .collect()
}

/// The row for `name` in a JSON block's "syscalls" array.
pub fn syscall<'a>(block: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    block["syscalls"]
        .as_array()?
        .iter()
        .find(|r| r["syscall"] == name)
}

/// The eBPF object tracer embeds: the one tracer/build.rs leaves in OUT_DIR
/// (integration tests of this package see the same OUT_DIR).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ebpf"));

/// The programs and maps an eBPF object declares, sorted.
#[derive(Debug)]
pub struct ObjectNames {
    /// Function symbols in program sections (`raw_tp/sys_enter`, `kprobe`, ...):
    /// every executable section but `.text`, which holds shared helpers.
    pub programs: Vec<String>,
    /// Data symbols in `maps` (aya's legacy map definitions) and `.maps` (BTF maps).
    pub maps: Vec<String>,
}

/// Read the program and map names of the ELF eBPF object `data`.
pub fn object_names(data: &[u8]) -> ObjectNames {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _, SectionKind, SymbolKind};
    let file = object::File::parse(data).expect("the eBPF object is an ELF file");
    let (mut programs, mut maps) = (Vec::new(), Vec::new());
    for sym in file.symbols() {
        let Some(section) = sym
            .section_index()
            .and_then(|i| file.section_by_index(i).ok())
        else {
            continue;
        };
        let (Ok(name), Ok(section_name)) = (sym.name(), section.name()) else {
            continue;
        };
        if name.is_empty() || !sym.is_global() {
            continue;
        }
        match sym.kind() {
            SymbolKind::Text if section.kind() == SectionKind::Text && section_name != ".text" => {
                programs.push(name.to_string())
            }
            SymbolKind::Data if matches!(section_name, "maps" | ".maps") => {
                maps.push(name.to_string())
            }
            _ => {}
        }
    }
    programs.sort();
    programs.dedup();
    maps.sort();
    maps.dedup();
    ObjectNames { programs, maps }
}

/// The programs and maps of tracer's own object: nothing by these names may
/// stay loaded after a run.
pub fn ours() -> &'static ObjectNames {
    static OURS: std::sync::OnceLock<ObjectNames> = std::sync::OnceLock::new();
    OURS.get_or_init(|| object_names(OBJECT))
}

/// Names of our programs currently loaded in the kernel (bpftool truncates names to 15 bytes).
pub fn loaded_programs() -> Vec<String> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "list"])
        .output()
        .expect("bpftool is needed to check what is loaded (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "bpftool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .filter(|n| {
            ours()
                .programs
                .iter()
                .any(|o| o.starts_with(n) && n.len() >= 8.min(o.len()))
        })
        .map(str::to_string)
        .collect()
}

/// Our maps currently in the kernel.
pub fn loaded_maps() -> Vec<String> {
    let out = Command::new("bpftool")
        .args(["-j", "map", "list"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .filter(|n| ours().maps.iter().any(|o| o.starts_with(n)))
        .map(str::to_string)
        .collect()
}

/// Wait (briefly) until nothing of ours is loaded; the kernel frees programs
/// asynchronously after the last reference goes.
///
/// Maps are listed only once our programs are gone. Listing a map opens it
/// by id (`bpftool map list`), which revives its user count; a program
/// array (the profile walker's stages) whose last fd closed has its slots
/// emptied by deferred kernel work, and a second close while that work is
/// pending leaks a reference (seen on 6.18: the arrays stay forever). The
/// stages in those slots are freed only after that work ran, so once no
/// program of ours is left, none is pending.
pub fn assert_nothing_loaded(context: &str) {
    let start = Instant::now();
    loop {
        let p = loaded_programs();
        let m = if p.is_empty() {
            loaded_maps()
        } else {
            Vec::new()
        };
        if p.is_empty() && m.is_empty() {
            return;
        }
        if start.elapsed() > Duration::from_secs(5) {
            panic!("{context}: still loaded: programs {p:?}, maps {m:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// tracer with `args`, once attached: killed with SIGKILL, nothing of it
/// stays loaded; started again and stopped with Ctrl-C, it exits 0 and
/// nothing stays loaded either.
pub fn assert_detaches(args: &[&str]) {
    let (mut child, _err) = start_attached(tracer().args(args));
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    assert_nothing_loaded(&format!("after SIGKILL of {args:?}"));
    let (mut child, _err) = start_attached(tracer().args(args));
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = child.wait().unwrap();
    assert!(st.success(), "{args:?} after Ctrl-C: {st}");
    assert_nothing_loaded(&format!("after Ctrl-C of {args:?}"));
}

/// Where cgroup v2 is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified`
/// in the hybrid layout).
pub fn cgroup2_mount() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| PathBuf::from(left.split_whitespace().nth(4).unwrap()))
        })
        .expect("cgroup v2 is mounted on this machine (CI's is)")
}

/// tracer with `args` fails with exit `code`, saying `wanted`, without a
/// panic; an error (exit 1) in one line.
pub fn fails_with(args: &[&str], code: i32, wanted: &str) {
    fails_as(tracer().args(args), code, wanted);
}

/// `cmd` (tracer, with its arguments and environment) fails with exit
/// `code`, saying `wanted`, without a panic; an error (exit 1) in one line.
pub fn fails_as(cmd: &mut Command, code: i32, wanted: &str) {
    let out = run(cmd, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    let args: Vec<_> = cmd.get_args().collect();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(wanted), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    if code == 1 {
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
    }
}
