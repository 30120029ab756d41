//! `fixture MODE [ARGS]`: programs whose syscalls are known exactly.
//!
//! Every mode that a test attaches to with `-p` first prints `ready` and waits
//! for a line on stdin (`--wait`), so the tracer can attach before the work.
use std::{ffi::CString, io::BufRead as _};

fn arg(args: &[String], i: usize, default: u64) -> u64 {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn wait_for_go() {
    println!("ready");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// `n` getppid calls and `m` openat calls on a missing path (ENOENT).
fn syscalls(n: u64, m: u64) {
    let missing = CString::new("/nonexistent/tracer-fixture").unwrap();
    for _ in 0..n {
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    for _ in 0..m {
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                missing.as_ptr(),
                libc::O_RDONLY,
            )
        };
        assert!(fd < 0);
    }
}

/// `n` geteuid calls: the benchmark loop. Returns the loop's own wall time,
/// which the modes print as `loop_ns N` so benchmarks measure the syscalls and
/// not process start-up.
#[inline(never)]
fn geteuid_loop(n: u64) -> u128 {
    let t = std::time::Instant::now();
    for _ in 0..n {
        unsafe { libc::syscall(libc::SYS_geteuid) };
    }
    t.elapsed().as_nanos()
}

/// `threads` threads, each making `n` getppid calls. The threads are raw
/// pthreads that never allocate (malloc arena creation depends on timing), and
/// the main thread waits for them in a way whose syscalls do not depend on
/// timing: one blocking read per thread on a pipe each writes to last, then a
/// pause long enough for them to be gone, so pthread_join never has to wait.
fn threads(threads: u64, n: u64) {
    static mut PIPE: [libc::c_int; 2] = [0; 2];
    extern "C" fn body(n: *mut libc::c_void) -> *mut libc::c_void {
        for _ in 0..n as u64 {
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        let b = 1u8;
        unsafe { libc::write(PIPE[1], (&b as *const u8).cast(), 1) };
        std::ptr::null_mut()
    }
    unsafe { assert_eq!(libc::pipe(std::ptr::addr_of_mut!(PIPE).cast()), 0) };
    let mut ids = [0 as libc::pthread_t; 64];
    let threads = threads.min(64) as usize;
    for id in ids.iter_mut().take(threads) {
        let rc =
            unsafe { libc::pthread_create(id, std::ptr::null(), body, n as *mut libc::c_void) };
        assert_eq!(rc, 0);
    }
    for _ in 0..threads {
        let mut b = 0u8;
        unsafe { assert_eq!(libc::read(PIPE[0], (&mut b as *mut u8).cast(), 1), 1) };
    }
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: 300_000_000,
    };
    unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
    for id in ids.iter().take(threads) {
        unsafe { libc::pthread_join(*id, std::ptr::null_mut()) };
    }
}

/// `k` children (fork), each making `n` getppid calls and exiting.
fn forks(k: u64, n: u64) {
    for _ in 0..k {
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            syscalls(n, 0);
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
}

/// One call each of the syscalls a churn child makes besides getppid (all
/// harmless, none fails). With getppid and exit_group, 13 rows per process.
const CHURN_CALLS: [libc::c_long; 11] = [
    libc::SYS_getpid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_gettid,
    libc::SYS_getsid,
    libc::SYS_getpgid,
    libc::SYS_sched_yield,
    libc::SYS_sched_getscheduler,
    libc::SYS_getpriority,
];

/// `k` children one after another, each making `n` getppid calls and one of
/// each of `CHURN_CALLS`, then exiting: process churn, and more
/// (process, syscall) rows than a per-process table of 32768 holds. With
/// PIDFILE, the children's pids are written there at the end, one a line.
fn churn(k: u64, n: u64, pids_to: Option<&str>) {
    let mut pids = Vec::with_capacity(k as usize);
    for _ in 0..k {
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            for _ in 0..n {
                unsafe { libc::syscall(libc::SYS_getppid) };
            }
            for nr in CHURN_CALLS {
                // Arguments 0, 0: this process / PRIO_PROCESS of this process.
                unsafe { libc::syscall(nr, 0, 0) };
            }
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0, "fork failed");
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        pids.push(pid.to_string());
    }
    if let Some(path) = pids_to {
        std::fs::write(path, pids.join("\n")).expect("writing the children's pids");
    }
}

/// The main thread exits first (the raw `exit` syscall ends only the calling
/// thread); a second thread waits `ms` milliseconds, then makes `n` getppid
/// calls and ends the process. The group leader is a zombie meanwhile.
fn leader_exit(n: u64, ms: u64) {
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        for _ in 0..n {
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        unsafe { libc::syscall(libc::SYS_exit_group, 0) };
    });
    unsafe { libc::syscall(libc::SYS_exit, 0) };
    unreachable!("the main thread exited");
}

/// `k` children that exec `/bin/true` (or the path given). With extra arguments,
/// each child gets them and then its index: `PATH ARG... i`.
fn execs(k: u64, path: &str, extra: &[String]) {
    for i in 0..k {
        let mut cmd = std::process::Command::new(path);
        if !extra.is_empty() {
            cmd.args(extra).arg(i.to_string());
        }
        let status = cmd.status().expect("spawn");
        assert!(status.success());
    }
}

/// Known file calls under `dir` (which holds a file `exists` and no `missing`),
/// made with raw syscalls so that libc cannot change them. `tracer trace` tests
/// expect exactly these, in this order:
///
///     openat(AT_FDCWD, "DIR/exists", O_RDONLY|O_CLOEXEC) = FD
///     close(FD) = 0
///     openat(AT_FDCWD, "DIR/missing", O_RDONLY) = -1 ENOENT
///     newfstatat(AT_FDCWD, "DIR/exists", BUF, 0) = 0
///     access("DIR/missing", F_OK) = -1 ENOENT
///     unlink("DIR/missing") = -1 ENOENT
///     mkdir("DIR/sub", 0755) = 0
///     rename("DIR/sub", "DIR/moved") = 0
///     rmdir("DIR/moved") = 0
///     openat(AT_FDCWD, "DIR/d/d/d/.../d" (300 bytes or more), O_RDONLY) = -1 ENOENT
#[cfg(target_arch = "x86_64")]
fn files(dir: &str) {
    let c = |p: String| CString::new(p).unwrap();
    let exists = c(format!("{dir}/exists"));
    let missing = c(format!("{dir}/missing"));
    let sub = c(format!("{dir}/sub"));
    let moved = c(format!("{dir}/moved"));
    let long = c(format!("{dir}{}", "/d".repeat(150)));
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe {
        let fd = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            exists.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        assert!(fd >= 0, "{dir}/exists must exist");
        libc::syscall(libc::SYS_close, fd);
        assert!(
            libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                missing.as_ptr(),
                libc::O_RDONLY
            ) < 0
        );
        assert_eq!(
            libc::syscall(
                libc::SYS_newfstatat,
                libc::AT_FDCWD,
                exists.as_ptr(),
                &mut st as *mut libc::stat,
                0
            ),
            0
        );
        assert!(libc::syscall(libc::SYS_access, missing.as_ptr(), libc::F_OK) < 0);
        assert!(libc::syscall(libc::SYS_unlink, missing.as_ptr()) < 0);
        assert_eq!(libc::syscall(libc::SYS_mkdir, sub.as_ptr(), 0o755), 0);
        assert_eq!(
            libc::syscall(libc::SYS_rename, sub.as_ptr(), moved.as_ptr()),
            0
        );
        assert_eq!(libc::syscall(libc::SYS_rmdir, moved.as_ptr()), 0);
        assert!(
            libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                long.as_ptr(),
                libc::O_RDONLY
            ) < 0
        );
    }
}

/// A second thread execs `path` (the kernel gives it the process's pid).
fn thread_exec(path: &str) {
    let p = CString::new(path).unwrap();
    let h = std::thread::spawn(move || {
        let argv = [p.as_ptr(), std::ptr::null()];
        unsafe { libc::execv(p.as_ptr(), argv.as_ptr()) };
        panic!("exec {p:?} failed");
    });
    let _ = h.join();
    unreachable!("the exec replaced this process");
}

/// A second thread sleeps in pause() while the main thread ends the process
/// (exit_group), once it sees that thread inside the call: the thread is killed
/// inside its syscall. The main thread's only call that varies in number is
/// pread64 (its polls of /proc/self/task/TID/syscall).
fn killed_in_call() {
    // A bare pthread: nothing in it allocates (a thread's first malloc makes
    // glibc map an arena and unmap 1 or 2 pieces of it, as the address falls).
    extern "C" fn sleeper(_: *mut libc::c_void) -> *mut libc::c_void {
        unsafe { libc::syscall(libc::SYS_pause) };
        std::ptr::null_mut()
    }
    let mut thread: libc::pthread_t = 0;
    let r = unsafe {
        libc::pthread_create(&mut thread, std::ptr::null(), sleeper, std::ptr::null_mut())
    };
    assert_eq!(r, 0, "pthread_create");
    let me = std::process::id().to_string();
    let tid = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|t| *t != me)
        .expect("the second thread");
    let path = CString::new(format!("/proc/self/task/{tid}/syscall")).unwrap();
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open {path:?}");
    let want = format!("{} ", libc::SYS_pause);
    let mut buf = [0u8; 128];
    loop {
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n > 0 && buf[..n as usize].starts_with(want.as_bytes()) {
            break;
        }
    }
    unsafe { libc::syscall(libc::SYS_exit_group, 0) };
}

/// `n` reads of 4 KiB from /dev/zero.
fn read_zero(n: u64) {
    use std::io::Read as _;
    let mut f = std::fs::File::open("/dev/zero").unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..n {
        f.read_exact(&mut buf[..]).unwrap();
    }
}

/// Writes of the given sizes to /dev/null.
fn writes(sizes: &[u64]) {
    for &s in sizes {
        let buf = vec![0u8; s as usize];
        unsafe { libc::write(libc::STDOUT_FILENO, buf.as_ptr().cast(), buf.len()) };
    }
}

/// A function uprobe tests count: called exactly `n` times.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_fixture_work(i: u64) -> u64 {
    std::hint::black_box(i.wrapping_mul(2654435761))
}

fn work(n: u64) {
    for i in 0..n {
        std::hint::black_box(tracer_fixture_work(i));
    }
}

/// `work(n)`'s own wall time: the uprobe benchmark loop.
fn work_loop(n: u64) -> u128 {
    let t = std::time::Instant::now();
    work(n);
    t.elapsed().as_nanos()
}

/// `n` malloc/free pairs through libc.
fn mallocs(n: u64) {
    for i in 0..n {
        let p = unsafe { libc::malloc(64 + (i as usize % 8)) };
        std::hint::black_box(p);
        unsafe { libc::free(p) };
    }
}

/// `procs` processes, each under its own comm (`spread0`, `spread1`, ...),
/// each making the syscalls numbered 600 to 600 + `n` - 1 once: numbers no
/// kernel has (they fail with ENOSYS and do nothing), which the syscall hooks
/// still see. Gives a tracer labelled by comm `procs` x `n` series.
fn spread(procs: u64, n: u64) {
    let mut children = Vec::new();
    for p in 0..procs {
        match unsafe { libc::fork() } {
            0 => {
                let name = std::ffi::CString::new(format!("spread{p}")).unwrap();
                unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
                for nr in 600..600 + n as libc::c_long {
                    let r = unsafe { libc::syscall(nr) };
                    assert_eq!(r, -1);
                }
                unsafe { libc::_exit(0) };
            }
            pid if pid > 0 => children.push(pid),
            _ => panic!("fork failed"),
        }
    }
    for pid in children {
        let mut st = 0;
        unsafe { libc::waitpid(pid, &mut st, 0) };
        assert_eq!(st, 0, "child {pid}");
    }
}

/// The work of `cpu_leaf_a` and `cpu_leaf_b`: `n` rounds of a hash no
/// compiler folds away. Inlined, so the samples land in the leaves themselves.
#[inline(always)]
fn burn(n: u64) -> u64 {
    // A while loop: a range's iterator would be calls of their own in a
    // debug build, taking the samples away from the leaves.
    let mut x = std::hint::black_box(0x9e37_79b9_7f4a_7c15u64);
    let mut i = 0;
    while i < n {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        x ^= x >> 29;
        i += 1;
    }
    std::hint::black_box(x)
}

/// Two thirds of `cpu_outer`'s CPU time.
#[inline(never)]
fn cpu_leaf_a(n: u64) -> u64 {
    burn(2 * n)
}

/// One third.
#[inline(never)]
fn cpu_leaf_b(n: u64) -> u64 {
    burn(n)
}

/// One round of the leaves' work, 2:1. Inlined into its callers, so the
/// leaves' caller is theirs.
#[inline(always)]
fn cpu_round() -> u64 {
    let mut x = 0;
    for _ in 0..100 {
        x ^= cpu_leaf_a(10_000);
        x ^= cpu_leaf_b(10_000);
    }
    x
}

/// `main -> cpu_outer -> cpu_leaf_a` and `-> cpu_leaf_b`, 2:1, for `ms`
/// milliseconds of CPU (a profile's known hot path); returns the rounds.
#[inline(never)]
fn cpu_outer(ms: u64) -> u64 {
    let t0 = std::time::Instant::now();
    let mut rounds = 0;
    let mut x = 0u64;
    while t0.elapsed().as_millis() < ms as u128 {
        x ^= cpu_round();
        rounds += 1;
    }
    std::hint::black_box(x);
    rounds
}

/// `rounds` rounds of `cpu_outer`'s work (fixed work, for timing): the
/// loop's nanoseconds.
#[inline(never)]
fn cpu_work(rounds: u64) -> u64 {
    let t0 = std::time::Instant::now();
    let mut x = 0u64;
    for _ in 0..rounds {
        x ^= cpu_round();
    }
    std::hint::black_box(x);
    t0.elapsed().as_nanos() as u64
}

/// Sleep `ms` milliseconds with a nanosleep made right here (not in libc,
/// which keeps no frame pointers), so the stack it blocks in starts in this
/// function: `main -> offcpu_outer -> offcpu_sleep`.
#[inline(never)]
fn offcpu_sleep(ms: u64) {
    let ts = libc::timespec {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
    };
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_nanosleep => _,
            in("rdi") &ts,
            in("rsi") 0usize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    unsafe {
        libc::nanosleep(&ts, std::ptr::null_mut());
    }
}

/// `n` sleeps of `ms` milliseconds in `offcpu_sleep`.
#[inline(never)]
fn offcpu_outer(n: u64, ms: u64) {
    for _ in 0..n {
        offcpu_sleep(ms);
    }
}

/// `n` TCP connections to a server of its own on `addr` (`port` 0: any free
/// one), each sending `k` bytes and receiving 100, then closed by the client
/// first. Prints `port P` before the first connection and the loop's wall time
/// (`loop_ns`) after the last.
fn tcp(n: u64, k: u64, addr: &str, port: u16) {
    use std::{
        io::{Read as _, Write as _},
        net::{Shutdown, TcpListener, TcpStream},
    };
    let ip: std::net::IpAddr = addr.parse().expect("an IP address");
    let listener = TcpListener::bind((ip, port)).expect("bind");
    let port = listener.local_addr().unwrap().port();
    println!("port {port}");
    let server = std::thread::spawn(move || {
        for _ in 0..n {
            let (mut c, _) = listener.accept().expect("accept");
            let mut buf = vec![0u8; 65536];
            while c.read(&mut buf).map(|r| r > 0).unwrap_or(false) {}
            let _ = c.write_all(&[b'r'; 100]);
        }
    });
    let data = vec![b'k'; k as usize];
    let t = std::time::Instant::now();
    for _ in 0..n {
        let mut s = TcpStream::connect((ip, port)).expect("connect");
        s.write_all(&data).expect("write");
        s.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).expect("read");
        assert_eq!(reply.len(), 100);
        drop(s);
    }
    let ns = t.elapsed().as_nanos();
    server.join().unwrap();
    println!("loop_ns {ns}");
}

/// `n` connects to a loopback port nobody listens on (refused).
fn tcp_refused(n: u64) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    println!("port {port}");
    for _ in 0..n {
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}

/// `clone(CLONE_PARENT | SIGCHLD)`: 0 in the child, its pid in the caller.
fn clone_parent_child() -> libc::c_long {
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_PARENT | libc::SIGCHLD,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    }
}

/// `clone(CLONE_PARENT)` and exit at once (code 0): the child, now the
/// starter's, outlives this program; it sleeps `ms`, makes 50 getppid calls
/// and exits with code 42. Whoever waits for every process (strace -f)
/// waits for it too.
fn clone_parent_leave(ms: u64) {
    let pid = clone_parent_child();
    if pid == 0 {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        for _ in 0..50 {
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        unsafe { libc::_exit(42) };
    }
    assert!(pid > 0, "clone: {}", std::io::Error::last_os_error());
}

/// `clone(CLONE_PARENT)`: the child (which exits at once with code 42) is
/// the parent's sibling, the child of whoever started this program, which is
/// the one to reap it; this program can only wait until it is gone, as
/// strace's tests/clone_parent.c does: `wait` fails with ECHILD, then
/// `kill(child, 0)` polls until ESRCH (the number of polls depends on timing;
/// exactly one fails). Gives up after 10 s, saying so, with exit code 1.
fn clone_parent() {
    let pid = clone_parent_child();
    if pid == 0 {
        unsafe { libc::_exit(42) };
    }
    assert!(pid > 0, "clone: {}", std::io::Error::last_os_error());
    let pid = pid as libc::pid_t;
    let mut status = 0;
    let r = unsafe { libc::wait(&mut status) };
    assert!(
        r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD),
        "wait should fail with ECHILD: the child is not ours"
    );
    let started = std::time::Instant::now();
    while unsafe { libc::kill(pid, 0) } == 0 {
        if started.elapsed() > std::time::Duration::from_secs(10) {
            eprintln!("clone-parent: child {pid} was not reaped within 10 s");
            std::process::exit(1);
        }
    }
    let err = std::io::Error::last_os_error();
    assert_eq!(err.raw_os_error(), Some(libc::ESRCH), "kill: {err}");
}

/// `n` calls of syscall number `nr` (one no kernel assigns: ENOSYS).
fn nosys(nr: u64, n: u64) {
    for _ in 0..n {
        let r = unsafe { libc::syscall(nr as libc::c_long) };
        assert!(r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS));
    }
}

/// One i386 syscall through `int $0x80` from 64-bit code: `nr` in eax, the
/// first argument in ebx. The kernel zeroes r8-r11 on the way back.
#[cfg(target_arch = "x86_64")]
fn int80(nr: u32, arg1: u32) -> i32 {
    let ret: i32;
    unsafe {
        std::arch::asm!(
            "push rbx",
            "mov ebx, {a:e}",
            "int 0x80",
            "pop rbx",
            a = in(reg) arg1,
            inlateout("eax") nr => ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    ret
}

/// `n` getpid calls through `int $0x80` (i386 number 20, where x86_64 has
/// writev), `m` i386 close(-1) calls (number 6, failing with EBADF), then `n`
/// x86_64 getpid calls (39).
#[cfg(target_arch = "x86_64")]
fn int80_calls(n: u64, m: u64) {
    const I386_GETPID: u32 = 20;
    const I386_CLOSE: u32 = 6;
    let me = std::process::id() as i32;
    for _ in 0..n {
        assert_eq!(int80(I386_GETPID, 0), me, "i386 getpid");
    }
    for _ in 0..m {
        assert_eq!(int80(I386_CLOSE, u32::MAX), -libc::EBADF, "i386 close(-1)");
    }
    for _ in 0..n {
        unsafe { libc::syscall(libc::SYS_getpid) };
    }
}

/// `n` x32 getpid calls (39 with `__X32_SYSCALL_BIT`) and `m` x32
/// rt_sigaction(0, NULL, NULL, 8) calls (512, x32's own number). A kernel
/// without the x32 ABI fails them with ENOSYS; one with it, rt_sigaction
/// with EINVAL (signal 0). strace counts them under "x32 mode" either way.
#[cfg(target_arch = "x86_64")]
fn x32_calls(n: u64, m: u64) {
    const X32: libc::c_long = 0x4000_0000;
    for _ in 0..n {
        unsafe { libc::syscall(X32 | 39) };
    }
    for _ in 0..m {
        let r = unsafe { libc::syscall(X32 | 512, 0, 0, 0, 8) };
        assert_eq!(r, -1, "x32 rt_sigaction(0, ...)");
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let wait = args.iter().any(|a| a == "--wait");
    args.retain(|a| a != "--wait");
    // `--comm NAME`: run under another comm, so that tests filtering by comm
    // see only this process and not fixtures of tests running alongside.
    if let Some(i) = args.iter().position(|a| a == "--comm") {
        let name = std::ffi::CString::new(args.get(i + 1).cloned().unwrap_or_default()).unwrap();
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
        args.drain(i..(i + 2).min(args.len()));
    }
    let mode = args.first().cloned().unwrap_or_default();
    if wait {
        wait_for_go();
    }
    match mode.as_str() {
        "syscalls" => syscalls(arg(&args, 1, 100), arg(&args, 2, 10)),
        #[cfg(target_arch = "x86_64")]
        "int80" => int80_calls(arg(&args, 1, 100), arg(&args, 2, 10)),
        #[cfg(target_arch = "x86_64")]
        "x32" => x32_calls(arg(&args, 1, 100), arg(&args, 2, 10)),
        // `loop_ns` on stdout, or on stderr where stdout carries a tracer's output.
        "geteuid" => println!("loop_ns {}", geteuid_loop(arg(&args, 1, 4_000_000))),
        "geteuid-timed" => eprintln!("loop_ns {}", geteuid_loop(arg(&args, 1, 4_000_000))),
        // A syscall nothing else on the machine makes: system-wide counts of it are exact.
        "rare" => {
            for _ in 0..arg(&args, 1, 1000) {
                unsafe { libc::syscall(libc::SYS_sched_get_priority_max, 12345) };
            }
        }
        "threads" => threads(arg(&args, 1, 4), arg(&args, 2, 1000)),
        "forks" => forks(arg(&args, 1, 3), arg(&args, 2, 100)),
        "churn" => churn(
            arg(&args, 1, 4000),
            arg(&args, 2, 5),
            args.get(3).map(String::as_str),
        ),
        "leader-exit" => leader_exit(arg(&args, 1, 1000), arg(&args, 2, 500)),
        "execs" => execs(
            arg(&args, 1, 3),
            args.get(2).map(String::as_str).unwrap_or("/bin/true"),
            args.get(3..).unwrap_or(&[]),
        ),
        #[cfg(target_arch = "x86_64")]
        "files" => files(args.get(1).map(String::as_str).unwrap_or(".")),
        "killed-in-call" => killed_in_call(),
        "thread-exec" => thread_exec(args.get(1).map(String::as_str).unwrap_or("/bin/true")),
        "read-zero" => read_zero(arg(&args, 1, 1000)),
        "writes" => writes(
            &args[1..]
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect::<Vec<_>>(),
        ),
        "work" => work(arg(&args, 1, 1000)),
        // `loop_ns` on stdout, like `geteuid`.
        "work-loop" => println!("loop_ns {}", work_loop(arg(&args, 1, 1000))),
        "malloc" => mallocs(arg(&args, 1, 1000)),
        "spread" => spread(arg(&args, 1, 100), arg(&args, 2, 400)),
        "sleep" => std::thread::sleep(std::time::Duration::from_millis(arg(&args, 1, 1000))),
        "cpu" => println!("rounds {}", cpu_outer(arg(&args, 1, 2000))),
        // `loop_ns` on stdout, like `geteuid`.
        "cpu-work" => println!("loop_ns {}", cpu_work(arg(&args, 1, 100))),
        "offcpu" => offcpu_outer(arg(&args, 1, 10), arg(&args, 2, 100)),
        "tcp" => tcp(
            arg(&args, 1, 10),
            arg(&args, 2, 1000),
            args.get(3).map(String::as_str).unwrap_or("127.0.0.1"),
            arg(&args, 4, 0) as u16,
        ),
        "tcp-refused" => tcp_refused(arg(&args, 1, 3)),
        "clone-parent" => clone_parent(),
        "clone-parent-leave" => clone_parent_leave(arg(&args, 1, 300)),
        "nosys" => nosys(arg(&args, 1, 1000), arg(&args, 2, 10)),
        _ => {
            eprintln!(
                "usage: fixture [--wait] syscalls N M | int80 N M | x32 N M | geteuid N | geteuid-timed N | threads T N | forks K N | churn K N [PIDFILE] | leader-exit N MS | \
                 execs K [PATH [ARG...]] | files DIR | thread-exec PATH | killed-in-call | read-zero N | writes SIZE... | work N | work-loop N | malloc N | spread P N | sleep MS | cpu MS | cpu-work ROUNDS | offcpu N MS | \
                 tcp N K [ADDR [PORT]] | tcp-refused N | clone-parent | clone-parent-leave MS | nosys NR N"
            );
            std::process::exit(2);
        }
    }
}
