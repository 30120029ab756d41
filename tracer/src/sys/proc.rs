//! Reading /proc: does a pid exist, its tgid, comm and parent; user names.

use anyhow::{bail, Result};

/// Fields of /proc/PID/status that tracer uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    pub tgid: u32,
    pub ppid: u32,
}

/// The value of field `key` of a /proc status text.
pub fn status_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| *k == key))
        .map(|(_, v)| v.trim())
}

fn status_number(text: &str, key: &str) -> u32 {
    status_field(text, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn parse_status(text: &str) -> Status {
    Status {
        name: status_field(text, "Name").unwrap_or_default().to_string(),
        tgid: status_number(text, "Tgid"),
        ppid: status_number(text, "PPid"),
    }
}

fn status_text(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok()
}

/// The status of a process or thread, None if it does not exist (any more).
pub fn status(pid: u32) -> Option<Status> {
    status_text(pid).map(|t| parse_status(&t))
}

/// The thread group (process) of `pid`, which may be a thread id; an error that
/// says so when there is no such process.
pub fn resolve_pid(pid: i32) -> Result<u32> {
    if pid <= 0 {
        bail!("invalid pid {pid}: a pid is a positive number");
    }
    match status(pid as u32) {
        Some(st) if st.tgid != 0 => Ok(st.tgid),
        _ => bail!("no process with pid {pid}"),
    }
}

/// Whether every thread of process `tgid` has exited, so none of them can make
/// (or finish) a syscall any more. A zombie group leader whose other
/// threads still run is not gone; a zombie with no other threads
/// (`Threads: 1`) is. A pid now used by a thread of another process means the
/// process was reaped: gone too.
pub fn group_gone(tgid: u32) -> bool {
    status_text(tgid).is_none_or(|text| status_says_gone(tgid, &text))
}

fn status_says_gone(tgid: u32, text: &str) -> bool {
    let state = status_field(text, "State").and_then(|v| v.chars().next());
    status_number(text, "Tgid") != tgid
        || matches!(state, Some('Z' | 'X')) && status_number(text, "Threads") <= 1
}

/// When process (or thread) `pid` started, in clock ticks after boot
/// (/proc/PID/stat's 22nd field): with the pid, it names one process for
/// good, where a pid alone may be reused as soon as it is reaped (pid_max is
/// 32768 by default). None if it does not exist.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the comm's closing parenthesis: field 3 (state) onwards.
    stat[stat.rfind(')')? + 2..]
        .split(' ')
        .nth(22 - 3)?
        .parse()
        .ok()
}

/// How many processes run now (the numeric entries of /proc).
pub fn count_processes() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0)
}

/// A wait status as a shell reports it: the exit code, or 128+N for signal N.
pub fn exit_code_of(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Every pid given, resolved to its process (tgid), without repeats.
pub fn resolve_pids(pids: &[i32]) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for &p in pids {
        let tgid = resolve_pid(p)?;
        if !out.contains(&tgid) {
            out.push(tgid);
        }
    }
    Ok(out)
}

/// The kernel-side filters on the task itself (`-u`, `--comm`): the flag bits
/// to set and the values to write into the object's globals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskFilters {
    pub flags: u32,
    pub uid: u32,
    pub comm: [u8; 16],
}

pub fn task_filters(uid: Option<&str>, comm: Option<&str>) -> Result<TaskFilters> {
    use tracer_common::flags::{FILTER_COMM, FILTER_UID};
    let mut t = TaskFilters::default();
    if let Some(u) = uid {
        t.flags |= FILTER_UID;
        t.uid = resolve_user(u)?;
    }
    if let Some(c) = comm {
        t.flags |= FILTER_COMM;
        t.comm = comm_bytes(c)?;
    }
    Ok(t)
}

/// A user given by name or number, as a uid.
pub fn resolve_user(user: &str) -> Result<u32> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok(uid);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd_uid(&passwd, user).ok_or_else(|| {
        anyhow::anyhow!("no user named `{user}` in /etc/passwd (give a name or a numeric uid)")
    })
}

fn passwd_uid(passwd: &str, user: &str) -> Option<u32> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == user).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

/// A comm as the kernel stores it: at most 15 bytes and a NUL.
pub fn comm_bytes(comm: &str) -> Result<[u8; 16]> {
    let b = comm.as_bytes();
    if b.is_empty() || b.len() > 15 {
        bail!(
            "--comm `{comm}`: a comm is 1 to 15 bytes (the kernel truncates longer names; \
             use the first 15)"
        );
    }
    let mut out = [0u8; 16];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// The parent and comm of process `pid`: what the kernel recorded at fork
/// and exec (`recorded`), else /proc, else `(0, "?")`.
pub fn parent_and_comm(pid: u32, recorded: Option<&tracer_common::ProcInfo>) -> (u32, String) {
    match recorded {
        Some(info) if info.comm[0] != 0 => {
            let ppid = match info.ppid {
                0 => status(pid).map_or(0, |st| st.ppid),
                ppid => ppid,
            };
            (ppid, comm_str(&info.comm))
        }
        _ => status(pid).map_or_else(|| (0, "?".into()), |st| (st.ppid, st.name)),
    }
}

/// The comm of process `pid`: as the kernel recorded it, else from /proc, else `?`.
pub fn comm_of(pid: u32, recorded: Option<&tracer_common::ProcInfo>) -> String {
    match recorded {
        Some(info) if info.comm[0] != 0 => comm_str(&info.comm),
        _ => status(pid).map_or_else(|| "?".into(), |st| st.name),
    }
}

/// A NUL-padded comm as text.
pub fn comm_str(comm: &[u8]) -> String {
    let end = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// This process's own figures, as the Prometheus client libraries export
/// them (`process_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SelfStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub start_time_seconds: f64,
    pub open_fds: u64,
    pub max_fds: u64,
}

/// Fields 14, 15 (utime, stime), 22 (starttime), 23 (vsize), 24 (rss) of a
/// /proc/PID/stat text, counted from 1; the comm (field 2) may hold spaces.
fn stat_fields(stat: &str) -> Option<(u64, u64, u64, u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // `rest` starts at field 3.
    let at = |n: usize| f.get(n - 3).copied();
    Some((at(14)?, at(15)?, at(22)?, at(23)?, at(24)?))
}

pub fn self_stats() -> SelfStats {
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    let mut st = SelfStats::default();
    if let Some((utime, stime, start, vsize, rss)) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(stat_fields)
    {
        st.cpu_seconds = (utime + stime) as f64 / ticks;
        st.start_time_seconds = boot + start as f64 / ticks;
        st.virtual_bytes = vsize;
        st.resident_bytes = rss * page;
    }
    st.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        st.max_fds = lim.rlim_cur;
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let st = parse_status(
            "Name:\tbash\nUmask:\t0022\nState:\tS\nTgid:\t42\nNgid:\t0\nPid:\t43\nPPid:\t1\n",
        );
        assert_eq!(
            st,
            Status {
                name: "bash".into(),
                tgid: 42,
                ppid: 1
            }
        );
    }

    #[test]
    fn own_stats() {
        let stat = "42 (a b) S 1 42 42 0 -1 0 0 0 0 0 150 50 0 0 20 0 1 0 1000 4096 3 x";
        assert_eq!(stat_fields(stat), Some((150, 50, 1000, 4096, 3)));
        let me = self_stats();
        assert!(me.resident_bytes > 0 && me.virtual_bytes >= me.resident_bytes);
        assert!(me.open_fds >= 3 && me.max_fds >= me.open_fds);
        assert!(me.start_time_seconds > 1e9);
    }

    #[test]
    fn group_gone_from_status() {
        let st = |state: &str, tgid: u32, threads: u32| {
            format!("Name:\tx\nState:\t{state}\nTgid:\t{tgid}\nPid:\t{tgid}\nThreads:\t{threads}\n")
        };
        assert!(!status_says_gone(42, &st("S (sleeping)", 42, 1)));
        assert!(!status_says_gone(42, &st("R (running)", 42, 3)));
        // The leader exited, another thread still runs.
        assert!(!status_says_gone(42, &st("Z (zombie)", 42, 2)));
        assert!(status_says_gone(42, &st("Z (zombie)", 42, 1)));
        assert!(status_says_gone(42, &st("X (dead)", 42, 1)));
        // Pid 42 is now a thread of process 40.
        assert!(status_says_gone(42, &st("S (sleeping)", 40, 2)));
        assert!(!group_gone(std::process::id()));
        assert!(group_gone(u32::MAX - 1));
    }

    #[test]
    fn users() {
        let pw = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/usr/sbin/nologin\n";
        assert_eq!(passwd_uid(pw, "nobody"), Some(65534));
        assert_eq!(passwd_uid(pw, "nope"), None);
        assert_eq!(resolve_user("1234").unwrap(), 1234);
    }

    #[test]
    fn comms() {
        assert_eq!(&comm_bytes("sh").unwrap()[..3], b"sh\0");
        assert!(comm_bytes("").is_err());
        assert!(comm_bytes("0123456789abcdef").is_err());
        assert_eq!(comm_str(b"cat\0\0\0"), "cat");
    }

    #[test]
    fn exit_codes_and_liveness() {
        assert_eq!(exit_code_of(3 << 8), 3);
        assert_eq!(exit_code_of(libc::SIGKILL), 128 + 9);
    }

    #[test]
    fn own_pid_resolves() {
        let me = std::process::id();
        assert_eq!(resolve_pid(me as i32).unwrap(), me);
        assert!(resolve_pid(0).is_err());
        assert!(resolve_pid(-5).is_err());
        let err = resolve_pid(i32::MAX).unwrap_err().to_string();
        assert!(err.contains("no process"), "{err}");
    }
}
