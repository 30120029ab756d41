//! ABIs: i386 syscalls (a 64-bit program using `int $0x80`, and a real
//! `gcc -m32` program) are counted under their own numbers and names, and
//! shown as strace shows them: a second table under "System call usage
//! summary for 32 bit mode:", every row equal to `strace -f -c`'s, the
//! tables' frame (headings, rules) equal line for line; `NAME@32` in the
//! syscount layout, `abi` in JSON, the i386 name in `trace`, `-e NAME` in
//! each ABI; and x32 calls in a table of their own. (`serve`'s `abi` label
//! is checked in tests/serve.rs.)
//!
//! As in tests/strace_compare.rs, `exit_group` is left out of the comparison:
//! strace counts a call when it returns, and it never does.
mod common;

use std::{collections::BTreeMap, path::PathBuf, process::Command, time::Duration};

use common::*;

const LIMIT: Duration = Duration::from_secs(120);

/// i386 getpid: where x86_64 has writev.
const I386_GETPID: u64 = 20;
const I386_CLOSE: u64 = 6;

/// (personality, syscall) -> (calls, errors). Personality: "64" for the
/// first table, "32" (or "x32") for one under its summary heading.
type Table = BTreeMap<(String, String), (u64, u64)>;

/// A `strace -c` style report: its rows, and its frame (every line that is
/// not a row or a total: headings, rules, the personality headings).
fn parse(text: &str) -> (Table, Vec<String>) {
    let mut rows = Table::new();
    let mut frame = Vec::new();
    let mut mode = "64".to_string();
    for line in text.lines() {
        // strace's notices of a personality change (they go to -o too).
        if line.starts_with("[ Process PID=") || line.starts_with("strace: ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("System call usage summary for ") {
            mode = rest
                .strip_suffix(" mode:")
                .unwrap_or_else(|| panic!("bad heading {line:?}"))
                .trim_end_matches(" bit")
                .to_string();
            frame.push(line.to_string());
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first().is_none_or(|w| w.starts_with('-') || *w == "%") {
            frame.push(line.to_string());
            continue;
        }
        let name = f[f.len() - 1];
        if name == "total" {
            continue;
        }
        assert!(f.len() == 5 || f.len() == 6, "bad row {line:?}");
        let calls = f[3].parse().unwrap_or_else(|_| panic!("bad row {line:?}"));
        let errors = if f.len() == 6 {
            f[4].parse().unwrap()
        } else {
            0
        };
        rows.insert((mode.clone(), name.to_string()), (calls, errors));
    }
    (rows, frame)
}

fn tempfile(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "tracer-abi-{tag}-{}-{:?}.txt",
        std::process::id(),
        std::thread::current().id()
    ))
}

fn strace_report(cmd: &[&str]) -> String {
    let f = tempfile("strace");
    let out = run(
        Command::new("strace")
            .args(["-f", "-c", "-o"])
            .arg(&f)
            .arg("--")
            .args(cmd),
        LIMIT,
    );
    assert!(out.status.success(), "strace: {out:?}");
    std::fs::read_to_string(&f).unwrap()
}

fn tracer_report(extra: &[&str], cmd: &[&str]) -> String {
    let f = tempfile("tracer");
    let out = run(
        tracer()
            .arg("syscalls")
            .args(extra)
            .arg("-o")
            .arg(&f)
            .arg("--")
            .args(cmd),
        LIMIT,
    );
    assert!(out.status.success(), "tracer: {out:?}");
    std::fs::read_to_string(&f).unwrap()
}

/// Every row of both tables equal to strace's, and the frame line for line.
fn compare_with_strace(cmd: &[&str]) -> Table {
    let (want, want_frame) = parse(&strace_report(cmd));
    let text = tracer_report(&[], cmd);
    let (mut got, got_frame) = parse(&text);
    for mode in ["64", "32", "x32"] {
        got.remove(&(mode.to_string(), "exit_group".to_string()));
    }
    assert_eq!(got, want, "rows differ from strace's; tracer said:\n{text}");
    assert_eq!(
        got_frame, want_frame,
        "layout differs; tracer said:\n{text}"
    );
    got
}

fn fixture_str() -> String {
    fixture_path().to_string_lossy().into_owned()
}

#[test]
fn int80_from_64_bit_code_is_counted_as_i386() {
    let _l = shared_lock();
    let fx = fixture_str();
    let t = compare_with_strace(&[&fx, "int80", "300", "7"]);
    let row = |mode: &str, name: &str| t.get(&(mode.to_string(), name.to_string())).copied();
    assert_eq!(row("32", "getpid"), Some((300, 0)), "{t:?}");
    assert_eq!(row("32", "close"), Some((7, 7)), "{t:?}");
    assert_eq!(t.keys().filter(|(m, _)| m == "32").count(), 2, "{t:?}");
    // The fixture's own getpid, then the 64-bit loop.
    assert_eq!(row("64", "getpid"), Some((301, 0)), "{t:?}");
    assert!(row("64", "writev").is_none_or(|(n, _)| n < 300), "{t:?}");
}

/// x32 calls (the number with `__X32_SYSCALL_BIT`): their own table, as in
/// strace, whether this kernel has the x32 ABI (the calls succeed) or not
/// (they fail with ENOSYS); x32's own numbers (512 and up) named too.
#[test]
fn x32_calls_get_their_own_table() {
    let _l = shared_lock();
    let fx = fixture_str();
    let t = compare_with_strace(&[&fx, "x32", "40", "6"]);
    let row = |name: &str| t.get(&("x32".to_string(), name.to_string())).copied();
    assert_eq!(row("getpid").map(|r| r.0), Some(40), "{t:?}");
    assert_eq!(row("rt_sigaction"), Some((6, 6)), "{t:?}");
    assert_eq!(t.keys().filter(|(m, _)| m == "x32").count(), 2, "{t:?}");
    let v = json_summary_of(&[], &[&fx, "x32", "40", "6"]);
    let rows = json_rows(&v);
    assert!(
        rows.contains_key(&("x32".into(), "getpid".into(), 39)),
        "{rows:?}"
    );
    assert_eq!(
        rows.get(&("x32".into(), "rt_sigaction".into(), 512)),
        Some(&(6, 6)),
        "{rows:?}"
    );
}

/// A real 32-bit program: `gcc -m32` (gcc-multilib, which `cargo xtask
/// setup` installs).
fn m32_program() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracer-abi-m32-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("m32.c");
    std::fs::write(
        &src,
        r#"#include <fcntl.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
int main(void) {
    struct utsname u;
    for (int i = 0; i < 40; i++) syscall(SYS_getpid);
    for (int i = 0; i < 7; i++) open("/nonexistent/tracer-abi", O_RDONLY);
    for (int i = 0; i < 3; i++) close(-1);
    for (int i = 0; i < 2; i++) uname(&u);
    int fd = open("/dev/null", O_WRONLY);
    for (int i = 0; i < 5; i++) write(fd, "x", 1);
    close(fd);
    return 0;
}
"#,
    )
    .unwrap();
    let bin = dir.join("m32");
    let out = run(
        Command::new("gcc")
            .args(["-m32", "-O2", "-o"])
            .arg(&bin)
            .arg(&src),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "gcc -m32 failed (32-bit libraries missing? `apt-get install gcc-multilib`, \
         which `cargo xtask setup` does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

#[test]
fn gcc_m32_program_rows_equal_strace() {
    let _l = shared_lock();
    let bin = m32_program();
    let t = compare_with_strace(&[bin.to_str().unwrap()]);
    let row = |name: &str| t.get(&("32".to_string(), name.to_string())).copied();
    assert_eq!(row("getpid"), Some((40, 0)), "{t:?}");
    assert_eq!(row("close").map(|r| r.1), Some(3), "{t:?}");
    assert_eq!(row("write"), Some((5, 0)), "{t:?}");
    // The 32-bit loader's own calls, under their i386 names.
    assert!(row("mmap2").is_some(), "{t:?}");
    // Only the execve that started it was made in 64-bit mode.
    let native: Vec<_> = t.keys().filter(|(m, _)| m == "64").collect();
    assert_eq!(native, [&("64".to_string(), "execve".to_string())], "{t:?}");
    std::fs::remove_dir_all(bin.parent().unwrap()).unwrap();
}

/// tracer syscalls --json's summary for the int80 fixture.
fn json_summary(extra: &[&str], n: &str, m: &str) -> serde_json::Value {
    let fx = fixture_str();
    json_summary_of(extra, &[&fx, "int80", n, m])
}

fn json_summary_of(extra: &[&str], cmd: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let text = tracer_report(&args, cmd);
    let mut objs = json_lines(text.as_bytes());
    let last = objs.pop().expect("a summary");
    assert_eq!(last["type"], "summary");
    last
}

/// (abi, syscall, nr) -> (calls, errors) of a JSON object's rows.
fn json_rows(v: &serde_json::Value) -> BTreeMap<(String, String, u64), (u64, u64)> {
    v["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (
                    r["abi"].as_str().unwrap().to_string(),
                    r["syscall"].as_str().unwrap().to_string(),
                    r["nr"].as_u64().unwrap(),
                ),
                (r["calls"].as_u64().unwrap(), r["errors"].as_u64().unwrap()),
            )
        })
        .collect()
}

#[test]
fn json_and_syscount_layout_name_the_abi() {
    let _l = shared_lock();
    let rows = json_rows(&json_summary(&[], "250", "4"));
    let get = |abi: &str, name: &str, nr: u64| {
        rows.get(&(abi.to_string(), name.to_string(), nr)).copied()
    };
    assert_eq!(
        get("i386", "getpid", I386_GETPID),
        Some((250, 0)),
        "{rows:?}"
    );
    assert_eq!(get("i386", "close", I386_CLOSE), Some((4, 4)), "{rows:?}");
    assert_eq!(get("x86_64", "getpid", 39), Some((251, 0)), "{rows:?}");
    let i386 = rows.keys().filter(|(abi, _, _)| abi == "i386").count();
    assert_eq!(i386, 2, "{rows:?}");
    assert!(
        rows.keys()
            .all(|(abi, _, _)| abi == "i386" || abi == "x86_64"),
        "{rows:?}"
    );
    // The syscount layout: one row per (syscall, ABI), strace's -e spelling.
    let fx = fixture_str();
    let text = tracer_report(
        &["--format", "syscount", "--all"],
        &[&fx, "int80", "250", "4"],
    );
    let count = |name: &str| {
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 2 && f[0] == name).then(|| f[1].parse::<u64>().unwrap())
        })
    };
    assert_eq!(count("getpid@32"), Some(250), "{text}");
    assert_eq!(count("close@32"), Some(4), "{text}");
    assert_eq!(count("getpid"), Some(251), "{text}");
}

#[test]
fn e_means_the_name_in_each_abi() {
    let _l = shared_lock();
    let names = |v: &serde_json::Value| {
        json_rows(v)
            .into_iter()
            .map(|((abi, name, _), (calls, _))| (abi, name, calls))
            .collect::<Vec<_>>()
    };
    let s = |a: &str, n: &str, c: u64| (a.to_string(), n.to_string(), c);
    assert_eq!(
        names(&json_summary(&["-e", "getpid"], "60", "2")),
        [s("i386", "getpid", 60), s("x86_64", "getpid", 61)]
    );
    assert_eq!(
        names(&json_summary(&["-e", "getpid@32,close@32"], "60", "2")),
        [s("i386", "close", 2), s("i386", "getpid", 60)]
    );
    assert_eq!(
        names(&json_summary(&["-e", "getpid@64"], "60", "2")),
        [s("x86_64", "getpid", 61)]
    );
    // A name only i386 has is a name: accepted, and nothing here makes it.
    assert_eq!(names(&json_summary(&["-e", "socketcall"], "60", "2")), []);
    fails_with(
        &["syscalls", "-e", "socketcall@64", "--", "true"],
        1,
        "unknown syscall `socketcall@64`",
    );
    fails_with(
        &["syscalls", "-e", "getpd", "--", "true"],
        1,
        "did you mean getpid",
    );
}

#[test]
fn trace_prints_i386_calls_under_their_names() {
    let _l = shared_lock();
    let fx = fixture_str();
    let out = run(
        tracer().args(["trace", "--", &fx, "int80", "5", "3"]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    let lines = |pat: &str| text.lines().filter(|l| l.contains(pat)).count();
    // 5 i386 getpid, then the fixture's own and 5 x86_64 ones.
    assert_eq!(lines(" getpid() = "), 11, "{text}");
    assert_eq!(lines(" close(-1) = -1 EBADF"), 3, "{text}");
    assert_eq!(lines(" writev("), 0, "{text}");
    let out = run(
        tracer().args(["trace", "--json", "--", &fx, "int80", "5", "3"]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let objs = json_lines(&out.stderr);
    let i386: Vec<(String, u64, String)> = objs
        .iter()
        .filter(|o| o["type"] == "syscall" && o["abi"] == "i386")
        .map(|o| {
            (
                o["syscall"].as_str().unwrap().to_string(),
                o["nr"].as_u64().unwrap(),
                o["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut want = vec![("getpid".to_string(), I386_GETPID, String::new()); 5];
    want.extend(vec![("close".to_string(), I386_CLOSE, "-1".to_string()); 3]);
    assert_eq!(i386, want);
    assert!(
        objs.iter()
            .filter(|o| o["type"] == "syscall")
            .all(|o| o["abi"] == "i386" || o["abi"] == "x86_64"),
        "every call has its ABI"
    );
}
