//! The checks of every tracer command other than `kprobe` inside a VM: pure
//! functions over one run's output (a `Section`), with the expectations of the
//! end-to-end tests in tracer/tests (same fixtures, same exact counts). The
//! same on every kernel; `judge` in mod.rs calls them.
use anyhow::{bail, ensure, Context as _, Result};
use serde_json::{json, Value};

use super::{excerpt, ran_ok, Section, EXEC_SH, LINES, N};

/// The JSON objects among `lines` (one per line).
pub fn json_objects(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The last JSON object of `lines`, which must be the run's summary.
fn summary(lines: &[String]) -> Result<Value> {
    let last = lines
        .iter()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no JSON output")?;
    let v: Value = serde_json::from_str(last).with_context(|| format!("bad JSON: {last}"))?;
    ensure!(
        v["type"] == "summary",
        "the last object is not the summary: {v}"
    );
    Ok(v)
}

/// With `-- CMD` the command owns stdout: the report must be on stderr alone.
fn launched_report(s: &Section) -> Result<&[String]> {
    if s.stdout.iter().any(|l| l.starts_with('{')) {
        bail!("the report of a launched command is on its stdout");
    }
    Ok(&s.stderr)
}

/// The row of `key` == `name` in the array `block[array]`.
fn row<'a>(block: &'a Value, array: &str, key: &str, name: &str) -> Option<&'a Value> {
    block[array].as_array()?.iter().find(|r| r[key] == name)
}

/// Each object's fields against the README's table under `heading`: every
/// field documented, with a documented type.
pub fn documented(readme: &str, heading: &str, objects: &[Value]) -> Result<()> {
    let doc = crate::jsondoc::documented(readme, heading).map_err(anyhow::Error::msg)?;
    crate::jsondoc::check(&doc, objects).map_err(anyhow::Error::msg)?;
    Ok(())
}

pub const SYSCALLS_DOC: &str = "### `tracer syscalls --json`";

/// `syscalls --json --all` system-wide while `fixture rare N` runs: exactly N
/// calls of sched_get_priority_max (nothing else makes it).
pub fn syscalls_all(s: &Section, readme: &str) -> Result<()> {
    ran_ok(s)?;
    let last = summary(&s.stdout)?;
    let calls = row(&last, "syscalls", "syscall", "sched_get_priority_max")
        .and_then(|r| r["calls"].as_u64());
    ensure!(
        calls == Some(N),
        "sched_get_priority_max: {calls:?} calls, the fixture made {N}: {last}"
    );
    documented(readme, SYSCALLS_DOC, &json_objects(&s.stdout))
}

/// `syscalls --cgroup tcg -- sh -c "fixture rare N; (move into tcg); exec
/// fixture rare L"`: only the L calls made inside the cgroup count.
pub fn syscalls_cgroup(s: &Section) -> Result<()> {
    rare_calls(
        s,
        &format!("{LINES} were made inside the cgroup ({N} outside)"),
    )
}

/// The report's sched_get_priority_max row (the fixture's `rare` mode) holds
/// `LINES` calls; `made` says which calls those are.
fn rare_calls(s: &Section, made: &str) -> Result<()> {
    ran_ok(s)?;
    let last = summary(&s.stdout)?;
    let calls = row(&last, "syscalls", "syscall", "sched_get_priority_max")
        .and_then(|r| r["calls"].as_u64());
    ensure!(
        calls == Some(LINES),
        "sched_get_priority_max: {calls:?} calls, {made}: {last}"
    );
    Ok(())
}

/// `unshare -p -f --mount-proc tracer syscalls -- sh -c "fixture rare L; true"`:
/// the L calls of the forked fixture count, as on the host.
pub fn pidns_syscalls(s: &Section) -> Result<()> {
    rare_calls(s, &format!("the fixture made {LINES} in a PID namespace"))
}

/// `unshare -p -f --mount-proc tracer trace --json -e sched_get_priority_max --
/// sh -c "echo $$ >/tmp/nspid; exec fixture rare L"`: L events, each with the
/// pid the fixture has in the namespace (the shell's `$$`, appended to the
/// report as `{"type":"nspid","pid":N}`).
pub fn pidns_trace(s: &Section) -> Result<()> {
    ran_ok(s)?;
    let objects = json_objects(&s.stdout);
    let nspid = objects
        .iter()
        .find(|o| o["type"] == "nspid")
        .and_then(|o| o["pid"].as_u64())
        .context("the script did not record the fixture's pid in the namespace")?;
    let events: Vec<&Value> = objects
        .iter()
        .filter(|e| e["syscall"] == "sched_get_priority_max")
        .collect();
    ensure!(
        events.len() as u64 == LINES,
        "in a PID namespace: {} sched_get_priority_max events, the fixture made {LINES}",
        events.len()
    );
    if let Some(e) = events
        .iter()
        .find(|e| e["pid"] != nspid || e["tid"] != nspid)
    {
        bail!("in a PID namespace the fixture is pid {nspid}, but an event says: {e}");
    }
    Ok(())
}

/// `syscalls --comm fxsw -e read --json` system-wide while a fixture of that
/// comm reads /dev/zero 0 and N times: the read counts differ by exactly N, and
/// nothing but read is counted.
pub fn syscalls_comm(zero: &Section, n: &Section, readme: &str) -> Result<()> {
    let reads = |s: &Section| -> Result<u64> {
        ran_ok(s)?;
        let last = summary(&s.stdout)?;
        let rows = last["syscalls"].as_array().context("no syscalls array")?;
        if let Some(other) = rows.iter().find(|r| r["syscall"] != "read") {
            bail!("-e read counted another syscall: {other}");
        }
        documented(readme, SYSCALLS_DOC, &json_objects(&s.stdout))?;
        // No read at all: no row.
        Ok(row(&last, "syscalls", "syscall", "read")
            .and_then(|r| r["calls"].as_u64())
            .unwrap_or(0))
    };
    let (r0, rn) = (reads(zero)?, reads(n)?);
    ensure!(
        rn.checked_sub(r0) == Some(N),
        "read calls: {rn} with {N} reads, {r0} with none; the difference should be {N}"
    );
    Ok(())
}

/// `syscalls -P -e getppid --json` system-wide while `fixture syscalls N 0`
/// (pid `pid`) runs: the fixture's own row with its N calls.
pub fn syscalls_per_process(s: &Section, pid: u64, readme: &str) -> Result<()> {
    ran_ok(s)?;
    let last = summary(&s.stdout)?;
    let procs = last["processes"]
        .as_array()
        .context("no processes in the report")?;
    let me = procs
        .iter()
        .find(|p| p["pid"] == pid)
        .with_context(|| format!("no row for the fixture (pid {pid}): {last}"))?;
    ensure!(
        me["comm"] == "fixture" && me["calls"] == N,
        "the fixture's row {me}, expected comm fixture and {N} calls"
    );
    documented(readme, SYSCALLS_DOC, &json_objects(&s.stdout))
}

/// `PID  name(args) = result` -> (pid, name, the rest after the name).
pub fn parse_trace_line(l: &str) -> Option<(u64, &str, &str)> {
    let (pid, rest) = l.split_once(' ')?;
    let pid = pid.parse().ok()?;
    let rest = rest.trim_start();
    let (name, args) = rest.split_once('(')?;
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (ok && args.contains(") = ")).then_some((pid, name, args))
}

/// `trace -e getppid,exit_group -- sh -c "fixture syscalls L 0; exit 3"`:
/// the fixture's L getppid lines and its exit_group(0), sh's exit_group(3)
/// (and whatever getppid busybox sh makes itself: one, for $PPID), nothing
/// from any other process; tracer's exit code is sh's.
pub fn trace_text(s: &Section) -> Result<()> {
    let err = excerpt(&s.stderr);
    ensure!(
        s.rc == Some(3),
        "tracer exited with {:?}, the traced command with 3: {err}",
        s.rc
    );
    let report = launched_report(s)?;
    ensure!(
        !s.stdout.iter().any(|l| parse_trace_line(l).is_some()),
        "trace lines on the command's stdout"
    );
    let calls: Vec<(u64, &str, &str)> = report.iter().filter_map(|l| parse_trace_line(l)).collect();
    if let Some(c) = calls
        .iter()
        .find(|c| c.1 != "getppid" && c.1 != "exit_group")
    {
        bail!("-e getppid,exit_group printed a {} call: {err}", c.1);
    }
    let exit = |code: &str| -> Vec<u64> {
        calls
            .iter()
            .filter(|c| c.1 == "exit_group" && c.2 == format!("{code}) = ?"))
            .map(|c| c.0)
            .collect()
    };
    let (fixture, sh) = match (&exit("0")[..], &exit("3")[..]) {
        ([f], [s]) if f != s => (*f, *s),
        (f, s) => bail!("expected one exit_group(0) (the fixture) and one exit_group(3) (sh), got {f:?} and {s:?}: {err}"),
    };
    let lines_of = |pid: u64| calls.iter().filter(|c| c.0 == pid).count() as u64;
    ensure!(
        lines_of(fixture) == LINES + 1,
        "{} getppid lines of the fixture (pid {fixture}), it made {LINES} calls: {err}",
        lines_of(fixture).saturating_sub(1)
    );
    if let Some(c) = calls.iter().find(|c| c.0 != fixture && c.0 != sh) {
        bail!(
            "a line of pid {}, neither sh ({sh}) nor the fixture ({fixture}): {err}",
            c.0
        );
    }
    Ok(())
}

/// `trace --json -T -e openat,unlink -- fixture files /tmp/tj`: the fixture's
/// calls on its directory exactly (path, result, errno, a long path cut at 255
/// bytes), each with a duration, and a summary that counts them all.
pub fn trace_json(s: &Section, readme: &str) -> Result<()> {
    ran_ok(s)?;
    let objs = json_objects(launched_report(s)?);
    let d = "/tmp/tj";
    let ours: Vec<&Value> = objs
        .iter()
        .filter(|o| o["type"] == "syscall")
        .filter(|o| {
            o["paths"][0]["value"]
                .as_str()
                .is_some_and(|p| p.starts_with(d))
        })
        .collect();
    let got: Vec<(&str, &str, i64, Option<&str>)> = ours
        .iter()
        .map(|o| {
            (
                o["syscall"].as_str().unwrap_or("?"),
                o["paths"][0]["value"].as_str().unwrap_or("?"),
                o["ret"].as_i64().unwrap_or(i64::MIN),
                o["errno"].as_str(),
            )
        })
        .collect();
    let fd = got.first().map(|g| g.2).unwrap_or(-1);
    let long = format!("{d}{}", "/d".repeat(150));
    let (exists, missing) = (format!("{d}/exists"), format!("{d}/missing"));
    let want = vec![
        ("openat", exists.as_str(), fd, None),
        ("openat", missing.as_str(), -2, Some("ENOENT")),
        ("unlink", missing.as_str(), -2, Some("ENOENT")),
        ("openat", &long[..255], -2, Some("ENOENT")),
    ];
    ensure!(fd >= 3 && got == want, "calls {got:?}, expected {want:?}");
    ensure!(
        ours[3]["paths"][0]["truncated"] == true && ours[1]["paths"][0]["truncated"] == false,
        "truncation flags: {} {}",
        ours[1],
        ours[3]
    );
    ensure!(
        ours.iter()
            .all(|o| o["duration_ns"].is_u64() && o["pid"] == ours[0]["pid"]),
        "a call without duration or from another pid: {ours:?}"
    );
    let last = objs.last().context("no summary")?;
    let n = objs.iter().filter(|o| o["type"] == "syscall").count() as u64;
    ensure!(
        last["type"] == "summary" && last["lost"] == 0 && last["events"] == n,
        "summary {last}, expected 0 lost and {n} events"
    );
    documented(readme, "### `tracer trace --json`", &objs)
}

/// `exec --json -- sh -c EXEC_SH`: sh's exec, the fixture's (forked by sh,
/// with its argv), its 3 children's, and tracer's exit code is sh's (7).
pub fn exec(s: &Section, readme: &str) -> Result<()> {
    ensure!(
        s.rc == Some(7),
        "tracer exited with {:?}, the traced command with 7: {}",
        s.rc,
        s.stderr.join(" | ")
    );
    let objs = json_objects(launched_report(s)?);
    let execs: Vec<&Value> = objs.iter().filter(|o| o["type"] == "exec").collect();
    let show = || format!("{objs:#?}");
    ensure!(
        execs.len() == 5,
        "{} execs, expected sh, the fixture and its 3 children: {}",
        execs.len(),
        show()
    );
    let sh = execs[0];
    ensure!(
        sh["argv"] == json!(["sh", "-c", EXEC_SH]) && sh["ret"] == 0,
        "the first exec is not sh's: {sh}"
    );
    let fx = execs
        .iter()
        .find(|e| e["filename"] == "/bin/fixture")
        .with_context(|| format!("no exec of /bin/fixture: {}", show()))?;
    let want = json!(["fixture", "execs", "3", "/bin/true", "x"]);
    ensure!(
        fx["argv"] == want
            && fx["argc"] == 5
            && fx["ppid"] == sh["pid"]
            && fx["comm"] == "fixture"
            && fx["ret"] == 0,
        "the fixture's exec {fx}: expected argv {want}, parent sh ({}), ret 0",
        sh["pid"]
    );
    let mut kids: Vec<&Value> = execs
        .iter()
        .copied()
        .filter(|e| e["filename"] == "/bin/true")
        .collect();
    kids.sort_by_key(|e| e["argv"][2].as_str().unwrap_or("").to_string());
    ensure!(
        kids.len() == 3,
        "{} execs of /bin/true: {}",
        kids.len(),
        show()
    );
    for (i, k) in kids.iter().enumerate() {
        ensure!(
            k["argv"] == json!(["/bin/true", "x", i.to_string()])
                && k["ppid"] == fx["pid"]
                && k["comm"] == "true"
                && k["uid"] == 0
                && k["ret"] == 0,
            "child {i}'s exec {k}: expected argv [/bin/true, x, {i}], parent {}",
            fx["pid"]
        );
    }
    let last = objs.last().context("no summary")?;
    ensure!(
        last["type"] == "summary" && last["events"] == 5 && last["lost"] == 0,
        "summary {last}, expected 5 events, 0 lost"
    );
    documented(readme, "### `tracer exec --json`", &objs)
}

/// `uprobe [-L] /bin/fixture:tracer_fixture_work --json -- fixture work N`:
/// exactly N calls (and N timed returns), exit code 0.
pub fn uprobe(s: &Section, latency: bool, readme: &str) -> Result<()> {
    ran_ok(s)?;
    let report = launched_report(s)?;
    let last = summary(report)?;
    let f = row(&last, "functions", "function", "tracer_fixture_work")
        .with_context(|| format!("no tracer_fixture_work row: {last}"))?;
    ensure!(
        f["calls"] == N,
        "{} calls, the fixture made {N}: {f}",
        f["calls"]
    );
    ensure!(
        last["exit_code"] == 0,
        "exit_code {} in the report",
        last["exit_code"]
    );
    if latency {
        let l = &f["latency"];
        let in_buckets: u64 = l["buckets"]
            .as_array()
            .map(|b| b.iter().filter_map(|x| x["count"].as_u64()).sum())
            .unwrap_or(0);
        ensure!(
            l["count"] == N && in_buckets == N,
            "latency samples: count {}, in buckets {in_buckets}, expected {N}",
            l["count"]
        );
        ensure!(l["total"].as_u64().unwrap_or(0) > 0, "total time is 0: {l}");
    }
    documented(readme, "### `tracer uprobe --json`", &json_objects(report))
}

/// `tracepoint sched:sched_process_exec -P --json -- fixture execs 3`: the
/// command's exec and its 3 children's, one per process.
pub fn tracepoint_exec(s: &Section, readme: &str) -> Result<()> {
    ran_ok(s)?;
    let report = launched_report(s)?;
    let last = summary(report)?;
    let count =
        row(&last, "events", "tracepoint", "sched:sched_process_exec").map(|e| e["count"].clone());
    ensure!(
        count == Some(json!(4)),
        "{count:?} execs, expected 4: {last}"
    );
    ensure!(
        last["exit_code"] == 0,
        "exit_code {} in the report",
        last["exit_code"]
    );
    let procs: Vec<(&str, u64)> = last["processes"]
        .as_array()
        .context("no processes")?
        .iter()
        .map(|p| {
            (
                p["comm"].as_str().unwrap_or(""),
                p["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let mut sorted = procs.clone();
    sorted.sort();
    ensure!(
        sorted == [("fixture", 1), ("true", 1), ("true", 1), ("true", 1)],
        "per process {procs:?}, expected one exec each of fixture and 3 true"
    );
    documented(
        readme,
        "### `tracer tracepoint --json`",
        &json_objects(report),
    )
}

/// Write sizes of `tracepoint ... --hist count -- fixture writes ...` (tests.sh).
pub const WRITES: [u64; 7] = [0, 1, 100, 1000, 5000, 5000, 70000];

/// `tracepoint syscalls:sys_enter_write --hist count`: each write size in its
/// log2 bucket, exactly (the report is in a file: this section's stdout).
pub fn tracepoint_hist(s: &Section, readme: &str) -> Result<()> {
    ran_ok(s)?;
    let last = summary(&s.stdout)?;
    let e = row(&last, "events", "tracepoint", "syscalls:sys_enter_write")
        .with_context(|| format!("no syscalls:sys_enter_write row: {last}"))?;
    let sum: u64 = WRITES.iter().sum();
    ensure!(
        e["count"] == WRITES.len() && e["sum"] == sum,
        "count {}, sum {}: expected {} and {sum}",
        e["count"],
        e["sum"],
        WRITES.len()
    );
    let h = &e["hist"];
    ensure!(h["field"] == "count" && h["negative"] == 0, "hist {h}");
    let got: Vec<(u64, u64, u64)> = h["buckets"]
        .as_array()
        .context("no buckets")?
        .iter()
        .map(|b| {
            let n = |k: &str| b[k].as_u64().unwrap_or(u64::MAX);
            (n("low"), n("high"), n("count"))
        })
        .collect();
    let want = [
        (0, 1, 2),
        (64, 127, 1),
        (512, 1023, 1),
        (4096, 8191, 2),
        (65536, 131071, 1),
    ];
    ensure!(got == want, "buckets {got:?}, expected {want:?}");
    documented(
        readme,
        "### `tracer tracepoint --json`",
        &json_objects(&s.stdout),
    )
}

/// `list kprobes 'vfs_*'`: only vfs_ names, vfs_read among them, more than 5.
pub fn list_kprobes(s: &Section) -> Result<()> {
    ran_ok(s)?;
    let o = &s.stdout;
    ensure!(
        o.len() > 5 && o.iter().all(|l| l.starts_with("vfs_")) && o.iter().any(|l| l == "vfs_read"),
        "{} names, expected more than 5, all vfs_*, vfs_read among them: {o:?}",
        o.len()
    );
    Ok(())
}

/// `list tracepoints 'sched:*'`: only sched: names, sched_process_exec among them.
pub fn list_tracepoints(s: &Section) -> Result<()> {
    ran_ok(s)?;
    let o = &s.stdout;
    ensure!(
        !o.is_empty()
            && o.iter().all(|l| l.starts_with("sched:"))
            && o.iter().any(|l| l == "sched:sched_process_exec"),
        "expected sched:* names with sched:sched_process_exec: {o:?}"
    );
    Ok(())
}

/// `list tracepoints sched:sched_process_fork -v`: the name, then its fields.
pub fn list_fields(s: &Section) -> Result<()> {
    ran_ok(s)?;
    let o = &s.stdout;
    ensure!(
        o.first().map(String::as_str) == Some("sched:sched_process_fork")
            && o.iter().any(|l| l.trim() == "pid_t child_pid"),
        "expected sched:sched_process_fork and its field `pid_t child_pid`: {o:?}"
    );
    Ok(())
}

/// `list uprobes /bin/fixture 'tracer_fixture_*'`: exactly the fixture's function.
pub fn list_uprobes(s: &Section) -> Result<()> {
    ran_ok(s)?;
    ensure!(
        s.stdout == ["tracer_fixture_work"],
        "expected exactly tracer_fixture_work: {:?}",
        s.stdout
    );
    Ok(())
}

/// A `killed` run: tracer attached ("Tracing" on its stderr), was killed
/// with SIGKILL, and then bpftool listed no program at all (the VM runs
/// nothing else that loads any).
pub fn nothing_left(s: &Section) -> Result<()> {
    ensure!(
        s.stderr.iter().any(|l| l.starts_with("Tracing")),
        "tracer did not attach: {:?}",
        s.stderr
    );
    ensure!(s.rc == Some(0), "bpftool prog list failed: {:?}", s.stdout);
    ensure!(
        s.stdout.iter().all(|l| l.trim().is_empty()),
        "programs still loaded after tracer was killed: {:?}",
        s.stdout
    );
    Ok(())
}

/// `serve --comm fxsrv --by comm --tracepoint ...`: the scrape (wget) has the
/// fixture's `calls` getppid calls in its comm's series, a duration histogram
/// for them, the tracepoint's series and the build info, in the Prometheus
/// text format; SIGTERM ended tracer with 0.
pub fn serve(s: &Section, calls: u64) -> Result<()> {
    ensure!(
        s.rc == Some(0),
        "tracer serve exit {:?} (wanted 0 after SIGTERM): {}",
        s.rc,
        excerpt(&s.stderr)
    );
    let has = |line: &str| s.stdout.iter().any(|l| l == line);
    let want = format!("tracer_syscalls_total{{syscall=\"getppid\",comm=\"fxsrv\"}} {calls}");
    ensure!(
        has(&want),
        "no `{want}` in the scrape: {}",
        excerpt(&s.stdout)
    );
    let hist = format!(
        "tracer_syscall_duration_seconds_bucket{{le=\"+Inf\",syscall=\"getppid\"}} {calls}"
    );
    ensure!(
        has(&hist),
        "no `{hist}` in the scrape: {}",
        excerpt(&s.stdout)
    );
    for family in [
        "# TYPE tracer_syscalls_total counter",
        "# TYPE tracer_probe_hits_total counter",
        "# TYPE tracer_build_info gauge",
    ] {
        ensure!(
            has(family),
            "no `{family}` in the scrape: {}",
            excerpt(&s.stdout)
        );
    }
    ensure!(
        s.stdout.iter().any(|l| l
            .starts_with("tracer_probe_hits_total{probe=\"tracepoint:sched:sched_process_exec\"}")),
        "no tracepoint series in the scrape: {}",
        excerpt(&s.stdout)
    );
    Ok(())
}

/// Features tracer has a fallback for: a kernel may lack them (5.10 does)
/// and every command still works, so their absence is a note, not a failure.
/// (A VM under TCG has no cycle counter; profile samples on cpu-clock.)
pub const OPTIONAL_FEATURES: [&str; 4] = [
    "task storage",
    "BPF cookies",
    "bpf_get_func_ip",
    "cycle counter",
];

/// Which commands fall back when each optional feature is missing.
const FALLS_BACK: [(&str, &[&str]); 3] = [
    ("task storage", &["syscalls", "serve"]),
    ("BPF cookies", &["uprobe", "tracepoint"]),
    ("bpf_get_func_ip", &["kprobe"]),
];

/// `info --json`: exit 0, JSON as documented, the kernel's release, BTF,
/// every feature available but those with a fallback, every command working,
/// on its fallback path exactly where its feature is missing (returned, for
/// notes, with the path).
pub fn info(s: &Section, release: &str, readme: &str) -> Result<Vec<String>> {
    ran_ok(s)?;
    let objs = json_objects(&s.stdout);
    let v = objs.first().context("no JSON output")?;
    ensure!(
        v["kernel"] == release,
        "kernel {} in a VM running {release}",
        v["kernel"]
    );
    ensure!(v["btf"] == true, "no BTF reported: {v}");
    let features = v["features"].as_array().context("no features")?;
    ensure!(!features.is_empty(), "no features listed");
    let mut missing = Vec::new();
    for f in features {
        let name = f["name"].as_str().context("a feature without a name")?;
        match f["available"].as_bool() {
            Some(true) => {}
            Some(false) if OPTIONAL_FEATURES.contains(&name) => {
                missing.push(format!("{name} unavailable: {}", f["reason"]));
            }
            _ => bail!("{name} unavailable: {}", f["reason"]),
        }
    }
    for want in ["kprobes", "fentry"] {
        ensure!(
            features.iter().any(|f| f["name"] == want),
            "{want} is not among the features"
        );
    }
    let has = |name: &str| {
        features
            .iter()
            .any(|f| f["name"] == name && f["available"] == true)
    };
    let commands = v["commands"].as_array().context("no commands")?;
    for want in [
        "syscalls",
        "trace",
        "exec",
        "uprobe",
        "tracepoint",
        "kprobe",
        "profile",
        "list",
    ] {
        let c = commands
            .iter()
            .find(|c| c["command"] == want)
            .with_context(|| format!("no path for {want}"))?;
        ensure!(c["works"] == true, "{want} cannot work here: {c}");
        let fallback = FALLS_BACK
            .iter()
            .any(|(feature, cmds)| cmds.contains(&want) && !has(feature));
        ensure!(
            c["fallback"] == fallback,
            "{want}: fallback should be {fallback} with these features: {c}"
        );
        if fallback {
            missing.push(format!(
                "{want} takes its fallback: {} (missing: {})",
                c["path"], c["missing"]
            ));
        }
    }
    documented(readme, "### `tracer info --json`", &objs)?;
    Ok(missing)
}

/// Folded stacks (`comm;frame;...;frame COUNT`) as (frames, count).
fn folded(lines: &[String]) -> Result<Vec<(Vec<&str>, u64)>> {
    lines
        .iter()
        .map(|l| {
            let (stack, n) = l
                .rsplit_once(' ')
                .with_context(|| format!("bad line {l:?}"))?;
            let n = n.parse().with_context(|| format!("bad count in {l:?}"))?;
            Ok((stack.split(';').collect(), n))
        })
        .collect()
}

/// Where frame `name` (a Rust path's last part) is in `frames`.
fn frame_at(frames: &[&str], name: &str) -> Option<usize> {
    frames
        .iter()
        .position(|f| *f == name || f.ends_with(&format!("::{name}")))
}

/// `profile -F 499 --folded -- fixture cpu 3000`: the chain `main ->
/// cpu_outer -> cpu_leaf_a | cpu_leaf_b`, root first, in nearly all the
/// leaves' samples (a sample on a function's first instructions, before it
/// has set its frame pointer, misses its caller: frame-pointer unwinding's
/// known blind spot), the leaves 2:1 within 20%.
pub fn profile_cpu(s: &Section) -> Result<()> {
    ran_ok(s)?;
    known_chain(
        &s.stdout,
        "fixture",
        ["cpu_leaf_a", "cpu_leaf_b"],
        "main -> cpu_outer -> leaf",
        |f, l| {
            let outer = frame_at(f, "cpu_outer");
            let main = frame_at(f, "main");
            matches!((main, outer), (Some(m), Some(o)) if m < o && o + 1 == l)
        },
    )
}

/// `profile -F 499 --json -- nofp 3000`: the C fixture built without frame
/// pointers, unwound from .eh_frame: `_start -> __libc_start_main -> (glibc's
/// __libc_start_call_main, unnamed in the VM: no debug symbols there) ->
/// main -> outer -> leaf_a | leaf_b -> spin`, root first, in nearly all the
/// leaves' samples (whole stacks), the leaves 2:1 within 20%. Samples walked
/// before the process's tables were in place (`tables_pending`: its start,
/// long under TCG the first time glibc's table is read) are left out, and
/// must be under a quarter.
pub fn profile_nofp(s: &Section) -> Result<()> {
    ran_ok(s)?;
    let (lines, pending) = placed_stacks(&s.stdout)?;
    let total: u64 = folded(&lines)?.iter().map(|l| l.1).sum::<u64>() + pending;
    ensure!(
        pending * 4 < total,
        "{pending} of {total} samples walked before the tables were placed"
    );
    let whole = "_start -> __libc_start_main -> libc -> main -> outer -> leaf -> spin";
    known_chain(&lines, "nofp", ["leaf_a", "leaf_b"], whole, |f, l| {
        l >= 5
            && f[l - 5..l - 3] == ["_start", "__libc_start_main"]
            && (f[l - 3] == "__libc_start_call_main" || f[l - 3].starts_with("libc.so.6+"))
            && f[l - 2..l] == ["main", "outer"]
            && f.get(l + 1) == Some(&"spin")
    })
}

/// A profile's JSON summary (`--json`) as folded lines (`comm;root;...;leaf
/// N`, kernel frames `_[k]`), without the stacks walked before their
/// process's tables were placed (`user_stack_end` `tables_pending`), and
/// the samples of those.
fn placed_stacks(lines: &[String]) -> Result<(Vec<String>, u64)> {
    let v = summary(lines)?;
    let stacks = v["stacks"].as_array().context("no stacks in the summary")?;
    let (mut out, mut pending) = (Vec::new(), 0);
    for st in stacks {
        let n = st["value"].as_u64().context("a stack without a value")?;
        if st["user_stack_end"] == "tables_pending" {
            pending += n;
            continue;
        }
        let mut line = st["comm"]
            .as_str()
            .context("a stack without comm")?
            .to_string();
        for f in st["frames"].as_array().context("a stack without frames")? {
            line.push(';');
            line.push_str(f["name"].as_str().context("a frame without a name")?);
            if f["kernel"] == true {
                line.push_str("_[k]");
            }
        }
        out.push(format!("{line} {n}"));
    }
    Ok((out, pending))
}

/// A CPU profile (folded `lines`) of command `comm` whose samples are nearly
/// all in two leaves spending 2:1: at least 300 samples, 70% in the leaves,
/// the whole chain (`whole(frames, leaf position)`) in 95% of the leaves'
/// samples, the ratio 2 within 20%.
fn known_chain(
    lines: &[String],
    comm: &str,
    leaves: [&str; 2],
    chain: &str,
    whole_at: impl Fn(&[&str], usize) -> bool,
) -> Result<()> {
    let stacks = folded(lines)?;
    let (mut a, mut b, mut whole, mut total) = (0, 0, 0, 0);
    for (frames, n) in &stacks {
        total += n;
        ensure!(frames[0] == comm, "a stack not of the command: {frames:?}");
        for (leaf, sum) in [(leaves[0], &mut a), (leaves[1], &mut b)] {
            if let Some(l) = frame_at(frames, leaf) {
                if whole_at(frames, l) {
                    whole += n;
                }
                *sum += n;
            }
        }
    }
    ensure!(total >= 300, "only {total} samples: {}", excerpt(lines));
    ensure!(a + b >= total * 7 / 10, "leaves {a}+{b} of {total} samples");
    ensure!(
        whole * 100 >= (a + b) * 95,
        "{chain}, root first, in only {whole} of {} samples: {}",
        a + b,
        excerpt(lines)
    );
    let ratio = a as f64 / b.max(1) as f64;
    ensure!(
        (1.6..=2.4).contains(&ratio),
        "{}:{} = {a}:{b} ({ratio:.2}), not 2 within 20%",
        leaves[0],
        leaves[1]
    );
    Ok(())
}

/// `profile --off-cpu --folded -- fixture offcpu 10 50`: about 500 ms (in
/// microseconds) in `offcpu_outer -> offcpu_sleep` and the kernel's schedule.
pub fn profile_off_cpu(s: &Section) -> Result<()> {
    ran_ok(s)?;
    let stacks = folded(&s.stdout)?;
    let mut slept = 0;
    for (frames, n) in &stacks {
        let (o, f) = (
            frame_at(frames, "offcpu_outer"),
            frame_at(frames, "offcpu_sleep"),
        );
        if matches!((o, f), (Some(o), Some(f)) if o + 1 == f) {
            ensure!(
                frames.iter().any(|f| f.ends_with("_[k]")),
                "no kernel frames under offcpu_sleep: {frames:?}"
            );
            slept += n;
        }
    }
    ensure!(
        (450_000..=700_000).contains(&slept),
        "{slept} us off-CPU in offcpu_sleep, not about 500 ms: {}",
        excerpt(&s.stdout)
    );
    Ok(())
}

/// The server port the fixture printed (`port P`).
fn fixture_port(s: &Section) -> Result<u64> {
    s.stdout
        .iter()
        .find_map(|l| l.strip_prefix("port ")?.trim().parse().ok())
        .with_context(|| format!("no port line from the fixture: {}", excerpt(&s.stdout)))
}

/// `tcp --json -- fixture tcp N K ADDR`: 2N closes (N client sockets that sent
/// K bytes and got 100, N server sockets the other way), all of the fixture,
/// with the server's port on the right side.
pub fn tcp_close(s: &Section, n: usize, k: u64, family: &str) -> Result<()> {
    ran_ok(s)?;
    let port = fixture_port(s)?;
    let objs = json_objects(launched_report(s)?);
    let closes: Vec<&Value> = objs
        .iter()
        .filter(|o| o["type"] == "tcp" && o["event"] == "close")
        .collect();
    ensure!(
        closes.len() == 2 * n,
        "{} closes, expected {}: {objs:#?}",
        closes.len(),
        2 * n
    );
    for c in closes {
        ensure!(
            c["comm"] == "fixture" && c["family"] == family,
            "not the fixture's: {c}"
        );
        let (tx, rx, server_port) = match c["direction"].as_str() {
            Some("active") => (k, 100, &c["dport"]),
            Some("passive") => (100, k, &c["sport"]),
            _ => bail!("no direction: {c}"),
        };
        ensure!(
            c["tx_bytes"] == tx && c["rx_bytes"] == rx && *server_port == port,
            "expected {tx} bytes sent, {rx} received, server port {port}: {c}"
        );
        ensure!(c["duration_ns"].as_u64() > Some(0), "no lifetime: {c}");
    }
    Ok(())
}

/// `tcp --json --accept -- fixture tcp 3 100`: 3 accepts by the fixture on its port.
pub fn tcp_accept(s: &Section) -> Result<()> {
    ran_ok(s)?;
    let port = fixture_port(s)?;
    let objs = json_objects(launched_report(s)?);
    let accepts: Vec<&Value> = objs.iter().filter(|o| o["event"] == "accept").collect();
    ensure!(
        accepts.len() == 3,
        "{} accepts, expected 3: {objs:#?}",
        accepts.len()
    );
    for a in accepts {
        ensure!(
            a["comm"] == "fixture" && a["sport"] == port,
            "not the fixture's accept on {port}: {a}"
        );
    }
    Ok(())
}

/// `tcp --json --connect -- fixture tcp-refused 2`: 2 failed connects.
pub fn tcp_refused(s: &Section) -> Result<()> {
    ran_ok(s)?;
    let port = fixture_port(s)?;
    let objs = json_objects(launched_report(s)?);
    let failed = objs
        .iter()
        .filter(|o| o["event"] == "connect" && o["failed"] == true && o["dport"] == port)
        .count();
    ensure!(
        failed == 2,
        "{failed} failed connects to {port}, expected 2: {objs:#?}"
    );
    Ok(())
}

/// `tcp --retransmits -d 1`: attached (the banner) and ended cleanly.
pub fn tcp_retransmits(s: &Section) -> Result<()> {
    ran_ok(s)?;
    ensure!(
        s.stderr
            .iter()
            .any(|l| l.starts_with("Tracing TCP retransmits")),
        "no banner: {}",
        excerpt(&s.stderr)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(stdout: &[String], stderr: &[String], rc: i32) -> Section {
        Section {
            stdout: stdout.to_vec(),
            stderr: stderr.to_vec(),
            rc: Some(rc),
        }
    }

    #[test]
    fn parses_trace_lines() {
        assert_eq!(
            parse_trace_line("42    getppid() = 1"),
            Some((42, "getppid", ") = 1"))
        );
        assert_eq!(
            parse_trace_line("7     exit_group(3) = ?"),
            Some((7, "exit_group", "3) = ?"))
        );
        assert_eq!(
            parse_trace_line(r#"12345 openat(AT_FDCWD, "/a (b)", O_RDONLY) = -1 ENOENT (No such file or directory)"#)
                .map(|t| t.1),
            Some("openat")
        );
        for l in [
            "Tracing syscalls... Hit Ctrl-C to end.",
            "",
            "lost 3 events",
            "x getppid() = 1",
        ] {
            assert_eq!(parse_trace_line(l), None, "{l}");
        }
    }

    #[test]
    fn trace_text_wants_every_call_and_the_exit_code() {
        let mut err: Vec<String> = (0..LINES)
            .map(|_| "51    getppid() = 50".to_string())
            .collect();
        err.push("51    exit_group(0) = ?".into());
        err.push("50    exit_group(3) = ?".into());
        trace_text(&section(&[], &err, 3)).unwrap();
        let e = trace_text(&section(&[], &err, 0)).unwrap_err().to_string();
        assert!(e.contains("exited with Some(0)"), "{e}");
        let short = &err[1..];
        let e = trace_text(&section(&[], short, 3)).unwrap_err().to_string();
        assert!(e.contains(&format!("{} getppid lines", LINES - 1)), "{e}");
        assert!(e.contains("... 91 more ..."), "{e}");
        // busybox sh's own getppid.
        let mut sh = vec!["50    getppid() = 1".to_string()];
        sh.extend(err.iter().cloned());
        trace_text(&section(&[], &sh, 3)).unwrap();
        let mut other = err.clone();
        other.push("51    read(0, 0x0, 1) = 0".into());
        assert!(trace_text(&section(&[], &other, 3)).is_err());
        other.pop();
        other.push("52    getppid() = 1".into());
        let e = trace_text(&section(&[], &other, 3))
            .unwrap_err()
            .to_string();
        assert!(e.contains("a line of pid 52"), "{e}");
        // sh's exit_group missing.
        assert!(trace_text(&section(&[], &err[..err.len() - 1], 3)).is_err());
    }

    #[test]
    fn syscalls_comm_compares_the_two_runs() {
        let run = |reads: Option<u64>| {
            let rows = reads
                .map(|n| format!(r#"{{"syscall":"read","nr":0,"calls":{n}}}"#))
                .unwrap_or_default();
            let line = format!(
                r#"{{"type":"summary","time":"10:00:00","seconds":1.0,"syscalls":[{rows}],"total":{{"calls":0}},"lost":{{}}}}"#
            );
            section(&[line], &[], 0)
        };
        syscalls_comm(&run(None), &run(Some(N)), "").unwrap_err(); // no README here
        let readme = std::fs::read_to_string(crate::util::root().join("README.md")).unwrap();
        syscalls_comm(&run(None), &run(Some(N)), &readme).unwrap();
        syscalls_comm(&run(Some(1)), &run(Some(N + 1)), &readme).unwrap();
        let e = syscalls_comm(&run(Some(1)), &run(Some(N)), &readme).unwrap_err();
        assert!(e.to_string().contains("the difference should be"), "{e}");
    }

    #[test]
    fn exec_wants_the_whole_tree() {
        let readme = std::fs::read_to_string(crate::util::root().join("README.md")).unwrap();
        let ev = |pid: u64, ppid: u64, comm: &str, filename: &str, argv: Value| {
            let argc = argv.as_array().unwrap().len();
            json!({"type": "exec", "time": 1.5, "pid": pid, "tid": pid, "ppid": ppid,
                "uid": 0, "comm": comm, "syscall": "execve", "filename": filename,
                "argv": argv, "argc": argc, "truncated": false, "ret": 0, "errno": null})
            .to_string()
        };
        let mut err = vec![
            ev(10, 1, "sh", "/bin/sh", json!(["sh", "-c", EXEC_SH])),
            ev(
                11,
                10,
                "fixture",
                "/bin/fixture",
                json!(["fixture", "execs", "3", "/bin/true", "x"]),
            ),
        ];
        for i in 0..3 {
            err.push(ev(
                12 + i,
                11,
                "true",
                "/bin/true",
                json!(["/bin/true", "x", i.to_string()]),
            ));
        }
        err.push(r#"{"type":"summary","events":5,"lost":0,"lost_ring_full":0,"lost_table_full":0,"without_paths":0}"#.into());
        exec(&section(&[], &err, 7), &readme).unwrap();
        assert!(exec(&section(&[], &err, 0), &readme).is_err());
        let mut wrong = err.clone();
        wrong[3] = ev(13, 10, "true", "/bin/true", json!(["/bin/true", "x", "1"]));
        let e = exec(&section(&[], &wrong, 7), &readme).unwrap_err();
        assert!(e.to_string().contains("child 1"), "{e}");
        // The report on the command's stdout is a failure.
        assert!(exec(&section(&err, &[], 7), &readme).is_err());
    }

    #[test]
    fn serve_wants_the_calls_and_exit_0() {
        let scrape: Vec<String> = [
            "# TYPE tracer_syscalls_total counter",
            "tracer_syscalls_total{syscall=\"getppid\",comm=\"fxsrv\"} 100",
            "tracer_syscall_duration_seconds_bucket{le=\"+Inf\",syscall=\"getppid\"} 100",
            "# TYPE tracer_probe_hits_total counter",
            "tracer_probe_hits_total{probe=\"tracepoint:sched:sched_process_exec\"} 1",
            "# TYPE tracer_build_info gauge",
        ]
        .map(String::from)
        .to_vec();
        assert!(serve(&section(&scrape, &[], 0), 100).is_ok());
        let e = serve(&section(&scrape, &[], 0), 99)
            .unwrap_err()
            .to_string();
        assert!(e.contains("comm=\"fxsrv\"} 99"), "{e}");
        assert!(serve(&section(&scrape, &[], 143), 100).is_err());
    }

    #[test]
    fn nothing_left_needs_an_attached_run_and_no_program() {
        let attached = ["Tracing 1 tracepoint... Hit Ctrl-C to end.".to_string()];
        nothing_left(&section(&[], &attached, 0)).unwrap();
        let left = ["42: raw_tracepoint  name sys_enter  tag 00".to_string()];
        assert!(nothing_left(&section(&left, &attached, 0)).is_err());
        assert!(nothing_left(&section(&[], &["tracer: refused".into()], 0)).is_err());
        assert!(nothing_left(&section(&[], &attached, 1)).is_err());
    }

    #[test]
    fn info_notes_only_features_with_a_fallback() {
        let readme = std::fs::read_to_string(crate::util::root().join("README.md")).unwrap();
        let info_with = |missing: &str| {
            let names = [
                "kprobes",
                "fentry",
                "task storage",
                "BPF cookies",
                "bpf_get_func_ip",
                "ring buffer",
            ];
            let features: Vec<Value> = names
                .iter()
                .map(|n| {
                    if *n == missing {
                        json!({"name": n, "available": false, "reason": "EINVAL"})
                    } else {
                        json!({"name": n, "available": true, "reason": null})
                    }
                })
                .collect();
            let commands: Vec<Value> =
                ["syscalls", "trace", "exec", "uprobe", "tracepoint", "kprobe", "profile", "list"]
                    .iter()
                    .map(|c| {
                        let fallback = *c == "syscalls" && missing == "task storage";
                        json!({"command": c, "works": true, "path": "p", "fallback": fallback,
                               "missing": if fallback { json!("task storage (Linux 5.11)") } else { Value::Null }})
                    })
                    .collect();
            let v = json!({"kernel": "5.10.0-32-cloud-amd64", "btf": true,
                "tracefs": "/sys/kernel/tracing", "features": features, "commands": commands});
            section(&[v.to_string()], &[], 0)
        };
        let k = "5.10.0-32-cloud-amd64";
        assert_eq!(
            info(&info_with(""), k, &readme).unwrap(),
            Vec::<String>::new()
        );
        let notes = info(&info_with("task storage"), k, &readme).unwrap();
        assert_eq!(
            notes,
            [
                "task storage unavailable: \"EINVAL\"",
                "syscalls takes its fallback: \"p\" (missing: \"task storage (Linux 5.11)\")"
            ]
        );
        // A fallback the features do not call for is a failure.
        let mut wrong: Value = serde_json::from_str(&info_with("").stdout[0]).unwrap();
        wrong["commands"][0]["fallback"] = json!(true);
        assert!(info(&section(&[wrong.to_string()], &[], 0), k, &readme).is_err());
        assert!(info(&info_with("ring buffer"), k, &readme).is_err());
        assert!(info(&info_with(""), "6.1.0-57-cloud-amd64", &readme).is_err());
    }
}
