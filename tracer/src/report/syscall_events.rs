//! Renderers of the event streams: strace-like lines for `tracer trace`,
//! execsnoop-like rows for `tracer exec`, JSON objects for both, and the
//! lost-event lines. Plain data in, text out.
use std::fmt::Write as _;

use serde_json::json;

use super::args::{self, Arg};
use crate::collect::events::{ExecRecord, Lost, Str, SyscallRecord};
use crate::sys::names::errno_name;

/// Which time stamp starts a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    None,
    /// Local wall-clock time of the call's entry, HH:MM:SS.micro.
    Wall,
    /// Seconds since the trace started, at the call's entry.
    Relative,
}

/// How to turn kernel times (CLOCK_MONOTONIC ns) into wall-clock and relative times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// CLOCK_REALTIME - CLOCK_MONOTONIC, nanoseconds.
    pub realtime_offset_ns: i64,
    /// Local time - UTC, seconds.
    pub utc_offset_s: i64,
    /// Monotonic time when tracing started.
    pub start_ns: u64,
}

impl Clock {
    /// The clocks of this machine now.
    pub fn now() -> Clock {
        let read = |id| {
            let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
            unsafe { libc::clock_gettime(id, &mut ts) };
            ts.tv_sec * 1_000_000_000 + ts.tv_nsec
        };
        let mono = read(libc::CLOCK_MONOTONIC);
        let real = read(libc::CLOCK_REALTIME);
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // A timespec's seconds have libc's time_t type on glibc and musl alike.
        let mut now: libc::timespec = unsafe { std::mem::zeroed() };
        now.tv_sec = (real / 1_000_000_000) as _;
        unsafe { libc::localtime_r(&now.tv_sec, &mut tm) };
        Clock {
            realtime_offset_ns: real - mono,
            utc_offset_s: tm.tm_gmtoff,
            start_ns: mono as u64,
        }
    }

    /// Unix time of a kernel time stamp, nanoseconds.
    pub fn unix_ns(&self, mono_ns: u64) -> i64 {
        mono_ns as i64 + self.realtime_offset_ns
    }

    /// Unix time of a kernel time stamp as a JSON number of seconds, exact to
    /// the nanosecond and always with a fraction (an f64 would lose the last
    /// digits and, at a whole second, print as an integer).
    pub fn unix_seconds_json(&self, mono_ns: u64) -> String {
        let ns = self.unix_ns(mono_ns);
        format!(
            "{}.{:09}",
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000)
        )
    }

    /// HH:MM:SS and the microseconds, local time.
    pub fn local(&self, mono_ns: u64) -> (i64, i64, i64, i64) {
        let local = self.unix_ns(mono_ns) + self.utc_offset_s * 1_000_000_000;
        let secs = local.div_euclid(1_000_000_000);
        let micros = local.rem_euclid(1_000_000_000) / 1000;
        let day = secs.rem_euclid(86_400);
        (day / 3600, day / 60 % 60, day % 60, micros)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct LineOptions {
    pub stamp: Stamp,
    pub durations: bool,
    pub clock: Clock,
}

fn push_result(out: &mut String, name: &str, ret: Option<i64>) {
    let _ = match ret {
        None => out.write_str(" = ?"),
        Some(r) if tracer_common::is_error_return(r) => write!(
            out,
            " = -1 {} ({})",
            errno_name(-r as u32),
            syscalls::Errno::new(-r as i32)
                .description()
                .unwrap_or("Unknown error")
        ),
        // Calls whose result is an address.
        Some(r) if matches!(name, "mmap" | "brk" | "mremap" | "shmat") => {
            write!(out, " = {:#x}", r as u64)
        }
        Some(r) => write!(out, " = {r}"),
    };
}

/// Nanoseconds as whole seconds and the microseconds after them.
fn secs_us(ns: u64) -> (u64, u64) {
    (ns / 1_000_000_000, ns % 1_000_000_000 / 1000)
}

/// One strace-like line (with its newline) for a completed call.
pub fn syscall_line(out: &mut String, r: &SyscallRecord, name: &str, sig: &[Arg], o: &LineOptions) {
    match o.stamp {
        Stamp::None => {}
        Stamp::Wall => {
            let (h, m, s, us) = o.clock.local(r.enter_ns);
            let _ = write!(out, "{h:02}:{m:02}:{s:02}.{us:06} ");
        }
        Stamp::Relative => {
            let (s, us) = secs_us(r.enter_ns.saturating_sub(o.clock.start_ns));
            let _ = write!(out, "{s:>4}.{us:06} ");
        }
    }
    let _ = write!(out, "{:<5} {name}(", r.pid);
    args::push_args(out, sig, &r.args, &r.strs);
    out.push(')');
    push_result(out, name, r.ret);
    if o.durations && r.ret.is_some() {
        let (s, us) = secs_us(r.exit_ns.saturating_sub(r.enter_ns));
        let _ = write!(out, " <{s}.{us:06}>");
    }
    out.push('\n');
}

fn str_json(s: &Str) -> serde_json::Value {
    match s {
        Str::Read { bytes, truncated } => json!({
            "value": String::from_utf8_lossy(bytes),
            "truncated": truncated,
        }),
        Str::List { items, .. } => items
            .iter()
            .map(|i| String::from_utf8_lossy(i))
            .collect::<Vec<_>>()
            .into(),
        Str::Failed(e) => json!({ "error": errno_name(*e as u32) }),
        Str::Missing => json!({ "error": "not kept (string table full)" }),
    }
}

fn errno_of(ret: i64) -> Option<String> {
    tracer_common::is_error_return(ret).then(|| errno_name(-ret as u32))
}

/// Append `s` as a JSON string.
fn push_json_str(out: &mut String, s: &str) {
    // serde_json's escaping; the String it returns is short-lived.
    out.push_str(&serde_json::Value::from(s).to_string());
}

fn push_str_json(out: &mut String, s: &Str) {
    match s {
        Str::Read { bytes, truncated } => {
            out.push_str("{\"value\":");
            push_json_str(out, &String::from_utf8_lossy(bytes));
            let _ = write!(out, ",\"truncated\":{truncated}}}");
        }
        other => out.push_str(&str_json(other).to_string()),
    }
}

/// One JSON object (with its newline) for a completed call. Written field by
/// field (no intermediate `Value`): this runs for every event.
pub fn syscall_json(out: &mut String, r: &SyscallRecord, name: &str, sig: &[Arg], clock: &Clock) {
    let _ = write!(
        out,
        "{{\"type\":\"syscall\",\"time\":{},\"pid\":{},\"tid\":{},\"syscall\":",
        clock.unix_seconds_json(r.enter_ns),
        r.pid,
        r.tid
    );
    // Syscall names are identifiers (or `syscall_0x3e8`): nothing to escape.
    let (abi, nr) = crate::sys::names::Abi::of(r.nr);
    let _ = write!(
        out,
        "\"{name}\",\"nr\":{nr},\"abi\":\"{}\",\"args\":[",
        abi.name()
    );
    for (i, a) in r.args[..sig.len().min(6)].iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{a}");
    }
    out.push_str("],\"text\":");
    let mut text = String::new();
    args::push_args(&mut text, sig, &r.args, &r.strs);
    push_json_str(out, &text);
    // The strings in argument order: paths go to "paths", an exec's argv to "argv".
    let mut kinds = sig.iter().filter(|a| matches!(a, Arg::Path | Arg::Argv));
    let mut argv = None;
    out.push_str(",\"paths\":[");
    let mut first = true;
    for s in &r.strs {
        let kind = match s {
            Str::Missing => None,
            _ => kinds.next(),
        };
        if kind == Some(&Arg::Argv) || matches!(s, Str::List { .. }) {
            argv = Some(s);
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        push_str_json(out, s);
    }
    out.push(']');
    if let Some(a) = argv {
        let (value, truncated) = match a {
            Str::List { cut, more, .. } => (str_json(a), *cut || *more),
            _ => (serde_json::Value::Null, false),
        };
        let _ = write!(out, ",\"argv\":{value},\"argv_truncated\":{truncated}");
    }
    let _ = match r.ret {
        Some(ret) => writeln!(
            out,
            ",\"ret\":{ret},\"errno\":{},\"duration_ns\":{}}}",
            json!(errno_of(ret)),
            r.exit_ns.saturating_sub(r.enter_ns)
        ),
        None => out.write_str(",\"ret\":null,\"errno\":null,\"duration_ns\":null}\n"),
    };
}

/// Explains lost events; None when nothing was lost.
pub fn lost_line(lost: &Lost, buffer_size: u32) -> Option<String> {
    let ring = format!(
        "lost: ring buffer full (tracer could not keep up; raise --buffer-size, now {})",
        human_size(buffer_size)
    );
    let parts: Vec<String> = [
        (lost.ring_full, ring.as_str()),
        (
            lost.table_full,
            "lost: entry table full (per thread; per connection for tcp, see --max-connections)",
        ),
        (
            lost.strings_missing,
            "sent without their paths: string table full",
        ),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "tracer: lost {} events ({})",
            lost.events(),
            parts.join("; ")
        )
    })
}

/// What is printed in the stream when events were lost since the last
/// report: a `--- ... ---` line, or a `{"type":"lost"}` object.
pub fn lost_block(delta: &Lost, json: bool, buffer_size: u32) -> Option<String> {
    if *delta == Lost::default() {
        return None;
    }
    if json {
        let mut v = lost_json(delta);
        v["type"] = "lost".into();
        Some(format!("{v}\n"))
    } else {
        lost_line(delta, buffer_size).map(|l| format!("--- {l} ---\n"))
    }
}

/// The last JSON line of a stream: events delivered and every loss.
pub fn summary_json(total: &Lost, events: u64) -> String {
    let mut v = lost_json(total);
    v["type"] = "summary".into();
    v["events"] = events.into();
    format!("{v}\n")
}

pub fn lost_json(lost: &Lost) -> serde_json::Value {
    json!({
        "lost": lost.events(),
        "lost_ring_full": lost.ring_full,
        "lost_table_full": lost.table_full,
        "without_paths": lost.strings_missing,
    })
}

pub fn human_size(b: u32) -> String {
    match b {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

/// Header of the exec table.
pub const EXEC_HEADER: &str = "TIME     PID     PPID    UID   COMM             RET ARGS\n";

/// A string as is when that is unambiguous (printable, no space or quote), else quoted.
fn push_word(out: &mut String, s: &Str) {
    match s {
        Str::Read { bytes, truncated }
            if !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\') =>
        {
            out.extend(bytes.iter().map(|&b| b as char));
            out.push_str(if *truncated { "..." } else { "" });
        }
        Str::Read { bytes, truncated } => args::quote(out, bytes, *truncated),
        Str::List { .. } | Str::Failed(_) | Str::Missing => out.push('?'),
    }
}

/// One execsnoop-like row: the file name, then argv[1..].
pub fn exec_line(out: &mut String, e: &ExecRecord, ppid: u32, clock: &Clock) {
    let (h, m, s, _) = clock.local(e.exit_ns);
    let _ = write!(
        out,
        "{h:02}:{m:02}:{s:02} {:<7} {:<7} {:<5} {:<16} {:>3} ",
        e.pid, ppid, e.uid, e.comm, e.ret
    );
    push_word(out, &e.filename);
    for a in e.args.iter().skip(1) {
        out.push(' ');
        push_word(out, a);
    }
    if e.argc as usize > e.args.len() {
        let more = (e.argc >= tracer_common::EXEC_MAX_ARGC).then_some("+");
        let _ = write!(out, " ... ({}{} args)", e.argc, more.unwrap_or_default());
    }
    out.push('\n');
}

pub fn exec_json(out: &mut String, e: &ExecRecord, ppid: u32, clock: &Clock) {
    let s = |s: &Str| match s {
        Str::Read { bytes, .. } => serde_json::Value::from(String::from_utf8_lossy(bytes)),
        _ => serde_json::Value::Null,
    };
    let v = json!({
        "type": "exec",
        "time": clock.unix_ns(e.exit_ns) as f64 / 1e9,
        "pid": e.pid,
        "tid": e.tid,
        "ppid": ppid,
        "uid": e.uid,
        "comm": e.comm,
        "syscall": crate::sys::names::syscall_name(e.nr),
        "filename": s(&e.filename),
        "argv": e.args.iter().map(s).collect::<Vec<_>>(),
        "argc": e.argc,
        "argc_at_least": e.argc >= tracer_common::EXEC_MAX_ARGC,
        "truncated": e.argc as usize > e.args.len()
            || e.args.iter().chain([&e.filename]).any(|a| matches!(a, Str::Read { truncated: true, .. })),
        "ret": e.ret,
        "errno": errno_of(e.ret),
    });
    out.push_str(&v.to_string());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> Clock {
        // 1_700_000_000 s = 2023-11-14 22:13:20 UTC.
        Clock {
            realtime_offset_ns: 1_700_000_000_000_000_000 - 1_000,
            utc_offset_s: 3600,
            start_ns: 1_000,
        }
    }

    fn rec(nr: u32, args: [u64; 6], ret: Option<i64>, strs: Vec<Str>) -> SyscallRecord {
        SyscallRecord {
            nr,
            pid: 4242,
            tid: 4242,
            enter_ns: 1_000 + 1_500_000,
            exit_ns: 1_000 + 1_512_345,
            args,
            ret,
            strs,
        }
    }

    fn path(p: &str) -> Str {
        Str::Read {
            bytes: p.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn opts(stamp: Stamp, durations: bool) -> LineOptions {
        LineOptions {
            stamp,
            durations,
            clock: clock(),
        }
    }

    fn line(r: &SyscallRecord, name: &str, stamp: Stamp, durations: bool) -> String {
        let mut out = String::new();
        let sig = args::known(name).unwrap_or(&[]);
        syscall_line(&mut out, r, name, sig, &opts(stamp, durations));
        out
    }

    fn json_of(r: &SyscallRecord, name: &str) -> (String, serde_json::Value) {
        let mut out = String::new();
        syscall_json(&mut out, r, name, args::known(name).unwrap(), &clock());
        let v = serde_json::from_str(out.trim()).unwrap();
        (out, v)
    }

    #[test]
    fn lines_like_strace() {
        let (fd, flags) = (libc::AT_FDCWD as u32 as u64, libc::O_CLOEXEC as u64);
        let r = rec(257, [fd, 1, flags, 0, 0, 0], Some(-2), vec![path("/nope")]);
        assert_eq!(line(&r, "openat", Stamp::None, false), "4242  openat(AT_FDCWD, \"/nope\", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)\n");
        let r = rec(107, [0; 6], Some(0), vec![]);
        assert_eq!(
            line(&r, "geteuid", Stamp::Relative, true),
            "   0.001500 4242  geteuid() = 0 <0.000012>\n"
        );
        assert_eq!(
            line(&r, "geteuid", Stamp::Wall, false),
            "23:13:20.001500 4242  geteuid() = 0\n"
        );
        let r = rec(231, [3, 0, 0, 0, 0, 0], None, vec![]);
        assert_eq!(
            line(&r, "exit_group", Stamp::None, true),
            "4242  exit_group(3) = ?\n"
        );
        let args = [0, 4096, 3, 0x22, u32::MAX as u64, 0];
        let r = rec(9, args, Some(0x7f00_0000_0000), vec![]);
        assert_eq!(
            line(&r, "mmap", Stamp::None, false),
            "4242  mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0x0) = 0x7f0000000000\n"
        );
    }

    #[test]
    fn json_objects() {
        let r = rec(87, [1, 0, 0, 0, 0, 0], Some(-2), vec![path("/x")]);
        let (out, v) = json_of(&r, "unlink");
        assert!(out.contains("\"time\":1700000000.001500000,"), "{out}");
        assert!(v["time"].is_f64());
        // At a whole second the time is still written with a fraction.
        let mut whole = rec(87, [1, 0, 0, 0, 0, 0], Some(-2), vec![path("/x")]);
        whole.enter_ns = 1_000;
        let (out, w) = json_of(&whole, "unlink");
        assert!(out.contains("\"time\":1700000000.000000000,"), "{out}");
        assert!(w["time"].is_f64());
        assert_eq!(v["syscall"], "unlink");
        assert_eq!(v["text"], "\"/x\"");
        assert_eq!(v["paths"][0]["value"], "/x");
        assert_eq!(v["errno"], "ENOENT");
        assert_eq!(v["ret"], -2);
        assert_eq!(v["duration_ns"], 12_345);
        assert_eq!(v["args"].as_array().unwrap().len(), 1);
        assert_eq!(v["tid"], 4242);
        assert_eq!(v["paths"][0]["truncated"], false);
        let q = Str::Read {
            bytes: b"a\"b\n".to_vec(),
            truncated: true,
        };
        let (_, v) = json_of(&rec(231, [0; 6], None, vec![q, Str::Failed(14)]), "rename");
        assert_eq!(v["paths"][0]["value"], "a\"b\n");
        assert_eq!(v["paths"][0]["truncated"], true);
        assert_eq!(v["paths"][1]["error"], "EFAULT");
        assert_eq!(v["ret"], serde_json::Value::Null);
        assert_eq!(v["duration_ns"], serde_json::Value::Null);
        assert_eq!(v["text"], "\"a\\\"b\\n\"..., NULL");
    }

    #[test]
    fn execve_line_and_json() {
        let argv = Str::List {
            items: vec![b"ls".to_vec(), b"-la".to_vec(), b"/etc".to_vec()],
            cut: false,
            more: false,
        };
        let args = [0x10, 0x20, 0x7ffd_0000, 0, 0, 0];
        let r = rec(59, args, Some(0), vec![path("/usr/bin/ls"), argv]);
        assert_eq!(
            line(&r, "execve", Stamp::None, false),
            "4242  execve(\"/usr/bin/ls\", [\"ls\", \"-la\", \"/etc\"], 0x7ffd0000) = 0\n"
        );
        let (_, v) = json_of(&r, "execve");
        assert_eq!(
            v["paths"],
            json!([{"value": "/usr/bin/ls", "truncated": false}])
        );
        assert_eq!(v["argv"], json!(["ls", "-la", "/etc"]));
        assert_eq!(v["argv_truncated"], false);
        assert_eq!(
            v["text"],
            "\"/usr/bin/ls\", [\"ls\", \"-la\", \"/etc\"], 0x7ffd0000"
        );
        // An argv that could not be read is null; other calls have no argv.
        let strs = vec![path("/x"), Str::Failed(14)];
        let (_, v) = json_of(
            &rec(59, [0x10, 0x20, 0, 0, 0, 0], Some(-14), strs),
            "execve",
        );
        assert_eq!(v["argv"], serde_json::Value::Null);
        assert_eq!(v["paths"].as_array().unwrap().len(), 1);
        let (out, _) = json_of(
            &rec(87, [1, 0, 0, 0, 0, 0], Some(0), vec![path("/x")]),
            "unlink",
        );
        assert!(!out.contains("argv"), "{out}");
    }

    #[test]
    fn exec_rows() {
        let e = ExecRecord {
            nr: 59,
            pid: 10,
            tid: 10,
            ppid: Some(9),
            uid: 0,
            enter_ns: 1_000,
            exit_ns: 2_000,
            ret: 0,
            comm: "true".into(),
            filename: path("/bin/true"),
            args: vec![path("true"), path("a b"), path("c")],
            argc: 12,
        };
        let mut out = String::new();
        exec_line(&mut out, &e, 9, &clock());
        assert_eq!(out, "23:13:20 10      9       0     true               0 /bin/true \"a b\" c ... (12 args)\n");
        out.clear();
        exec_json(&mut out, &e, 9, &clock());
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["argv"], json!(["true", "a b", "c"]));
        assert_eq!(v["truncated"], true);
        assert_eq!(v["filename"], "/bin/true");
    }

    #[test]
    fn lost_is_spelled_out() {
        assert_eq!(lost_line(&Lost::default(), 4096), None);
        let l = Lost {
            ring_full: 5,
            table_full: 1,
            strings_missing: 0,
        };
        let t = lost_line(&l, 8192).unwrap();
        assert!(t.starts_with("tracer: lost 6 events"), "{t}");
        assert!(t.contains("--buffer-size, now 8K"), "{t}");
    }
}
