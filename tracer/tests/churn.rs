//! End-to-end: per-process counting (`-P`, `--per-process`) while thousands of
//! short-lived processes come and go. Rows of exited processes are taken out
//! of the kernel's per-process table during the run, so nothing is lost even
//! when the processes make far more (process, syscall) rows than it holds.
mod common;

use std::{collections::BTreeMap, process::Command, time::Duration};

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

/// Children the churn fixture forks, and getppid calls each makes. Each child
/// also makes one call of 11 other syscalls, set_robust_list and exit_group:
/// 14 rows each, 56000 in all, well over the 32768 rows of the table.
const CHILDREN: u64 = 4000;
const GETPPID: u64 = 5;
/// The other syscalls of a churn child (tracer-fixtures, `CHURN_CALLS`).
const CHURN_CALLS: [&str; 12] = [
    "getpid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "gettid",
    "getsid",
    "getpgid",
    "sched_yield",
    "sched_getscheduler",
    "getpriority",
    "exit_group",
];

fn calls_of(rows: &Value, name: &str) -> Option<u64> {
    rows.as_array()?
        .iter()
        .find(|r| r["syscall"] == name)
        .map(|r| r["calls"].as_u64().unwrap())
}

/// Nothing lost, and the per-process rows add up to the totals: per syscall
/// and over all.
fn assert_consistent(block: &Value) {
    assert_eq!(
        block["lost"],
        serde_json::json!({}),
        "updates were lost: {}",
        block["lost"]
    );
    let procs = block["processes"].as_array().expect("processes");
    let mut by_syscall: BTreeMap<String, u64> = BTreeMap::new();
    let mut sum = 0;
    for p in procs {
        let mut own = 0;
        for r in p["syscalls"].as_array().unwrap() {
            let n = r["calls"].as_u64().unwrap();
            *by_syscall
                .entry(r["syscall"].as_str().unwrap().to_string())
                .or_default() += n;
            own += n;
        }
        assert_eq!(p["calls"], own, "process calls != its rows: {p}");
        sum += own;
    }
    assert_eq!(
        block["total"]["calls"], sum,
        "total != sum of the processes"
    );
    let rows: BTreeMap<String, u64> = block["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["syscall"].as_str().unwrap().to_string(),
                r["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, by_syscall, "syscall rows != sums of process rows");
}

/// Every churn child: exactly GETPPID getppid calls and one of each other call.
fn assert_children(children: &[&Value]) {
    assert_eq!(
        children.len() as u64,
        CHILDREN,
        "expected a table for each of the {CHILDREN} children"
    );
    for c in children {
        assert_eq!(calls_of(&c["syscalls"], "getppid"), Some(GETPPID), "{c}");
        for name in CHURN_CALLS {
            assert_eq!(calls_of(&c["syscalls"], name), Some(1), "{name}: {c}");
        }
    }
}

/// Ids of the loaded maps named `name`.
fn map_ids(name: &str) -> Vec<u64> {
    let out = Command::new("bpftool")
        .args(["-j", "map", "show"])
        .output()
        .expect("bpftool");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == name)
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

/// The tgids of the rows in map `id` (a `ProcKey` starts with the tgid).
fn tgids_in(id: u64) -> Vec<u32> {
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "id", &id.to_string()])
        .output()
        .expect("bpftool");
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let b: Vec<u8> = e["key"].as_array().unwrap()[..4]
                .iter()
                .map(|x| {
                    u8::from_str_radix(x.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
                })
                .collect();
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        })
        .collect()
}

/// System-wide `-P` while 4000 processes (56000 rows) come and go: nothing
/// lost, each child's row exact, and the rows of the exited children are out
/// of the kernel's table before the run ends.
#[test]
fn system_wide_per_process_survives_churn() {
    // Exclusive: the kernel's table is inspected, and only ours may be new.
    let _l = exclusive_lock();
    let comm = format!("fxch{}", std::process::id() % 100_000);
    let before = map_ids("PROC_STATS").into_iter().max().unwrap_or(0);
    let (tr, _err) = start_attached(tracer().args(["syscalls", "-P", "--json", "--all"]));
    let ours: Vec<u64> = map_ids("PROC_STATS")
        .into_iter()
        .filter(|&id| id > before)
        .collect();
    assert_eq!(ours.len(), 1, "which PROC_STATS is tracer's? {ours:?}");
    let pid_file = std::env::temp_dir().join(format!("tracer-churn-{}.pids", std::process::id()));
    let fx = run(
        fixture()
            .args([
                "--comm",
                &comm,
                "churn",
                &CHILDREN.to_string(),
                &GETPPID.to_string(),
            ])
            .arg(&pid_file),
        LIMIT,
    );
    assert!(fx.status.success(), "{fx:?}");
    let exited: Vec<u32> = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let _ = std::fs::remove_file(&pid_file);
    assert_eq!(exited.len() as u64, CHILDREN);
    // tracer drains exits every 100 ms: wait, while it still runs, until no
    // exited child has a row in the kernel's table (at most 30 s).
    let t0 = std::time::Instant::now();
    let live = loop {
        let live = tgids_in(ours[0]);
        if !exited.iter().any(|p| live.contains(p)) || t0.elapsed() > Duration::from_secs(30) {
            break live;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    unsafe { libc::kill(tr.id() as i32, libc::SIGINT) };
    let out = wait_output(tr, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let last = json_lines(&out.stdout).pop().expect("a summary");
    assert_consistent(&last);
    let procs = last["processes"].as_array().unwrap();
    let children: Vec<&Value> = procs
        .iter()
        .filter(|p| p["comm"] == comm.as_str() && calls_of(&p["syscalls"], "getppid").is_some())
        .collect();
    assert_children(&children);
    let left: Vec<u64> = children
        .iter()
        .map(|c| c["pid"].as_u64().unwrap())
        .filter(|pid| live.contains(&(*pid as u32)))
        .collect();
    assert!(
        left.is_empty(),
        "rows of {} exited children still in the kernel's table 30 s after they \
         exited, during the run ({} rows in it): {left:?}",
        left.len(),
        live.len()
    );
}

/// `--per-process -- CMD` on a command that forks 4000 children: a table for
/// each child with its exact counts, nothing lost, the command's exit code.
#[test]
fn per_process_command_survives_churn() {
    let _l = shared_lock();
    let fx = fixture_path();
    let out = run(
        tracer()
            .args(["syscalls", "--per-process", "--json", "--"])
            .arg(&fx)
            .args(["churn", &CHILDREN.to_string(), &GETPPID.to_string()]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let last = json_lines(&out.stderr)
        .pop()
        .expect("a summary on stderr (the command owns stdout)");
    assert_eq!(
        last["exit_code"],
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_consistent(&last);
    let procs = last["processes"].as_array().unwrap();
    assert_eq!(
        procs.len() as u64,
        CHILDREN + 1,
        "the command and its children"
    );
    let parent = procs
        .iter()
        .find(|p| calls_of(&p["syscalls"], "wait4").is_some())
        .expect("the command's own table (it waits for each child)");
    assert_eq!(calls_of(&parent["syscalls"], "wait4"), Some(CHILDREN));
    let children: Vec<&Value> = procs
        .iter()
        .filter(|p| p["ppid"] == parent["pid"])
        .collect();
    assert_children(&children);
}

/// A process whose main thread exits first: it is not gone while its other
/// thread runs, so that thread's calls, made after the leader's exit notice,
/// are still counted (with no exit hook, each call passes the traced-set
/// filter: the process must stay in the set).
#[test]
fn leader_exiting_first_is_not_a_process_exit() {
    let _l = shared_lock();
    let fx = fixture_path();
    let out = run(
        tracer()
            .args([
                "syscalls",
                "--per-process",
                "--format",
                "syscount",
                "--json",
                "--all",
                "--",
            ])
            .arg(&fx)
            .args(["leader-exit", "777", "400"]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let last = json_lines(&out.stderr)
        .pop()
        .expect("a summary on stderr (the command owns stdout)");
    assert_consistent(&last);
    let procs = last["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1, "{last}");
    assert_eq!(
        calls_of(&procs[0]["syscalls"], "getppid"),
        Some(777),
        "{last}"
    );
}
