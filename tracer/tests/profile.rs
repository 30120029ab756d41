//! `tracer profile` against fixtures whose hot paths are known: the fixture's
//! `cpu` mode spends its CPU in `main -> cpu_outer -> cpu_leaf_a` and
//! `-> cpu_leaf_b` in a 2:1 ratio; `offcpu N MS` sleeps N times MS ms in
//! `main -> offcpu_outer -> offcpu_sleep`.
mod common;

#[path = "../src/report/pprof_proto.rs"]
#[allow(dead_code)]
mod pprof_proto;

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use common::*;
use prost::Message as _;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(90);

fn fx() -> String {
    fixture_path().to_str().unwrap().to_string()
}

/// A directory of one test's own (the tests of this file run at once, in
/// one process): removed when dropped.
struct TmpDir(PathBuf);

impl TmpDir {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("tracer-profile-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TmpDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Folded lines as (frames, count).
fn folded(text: &str) -> Vec<(Vec<String>, u64)> {
    text.lines()
        .map(|l| {
            let (stack, n) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let n = n.parse().unwrap_or_else(|_| panic!("bad count in {l:?}"));
            (stack.split(';').map(str::to_string).collect(), n)
        })
        .collect()
}

/// The position of the frame ending in `name` (Rust paths: `fixture::cpu_outer`).
fn pos(frames: &[String], name: &str) -> Option<usize> {
    frames
        .iter()
        .position(|f| f == name || f.ends_with(&format!("::{name}")))
}

/// Samples with frame `leaf` on the stack, and how many of them show the
/// whole chain `main -> cpu_outer -> leaf`, root first.
fn samples_in(lines: &[(Vec<String>, u64)], leaf: &str) -> (u64, u64) {
    let (mut n, mut whole) = (0, 0);
    for (frames, count) in lines {
        let Some(l) = pos(frames, leaf) else { continue };
        assert_eq!(frames[0], "fixture", "comm first: {frames:?}");
        let outer = pos(frames, "cpu_outer");
        let main = frames.iter().position(|f| f.ends_with("::main"));
        if matches!((main, outer), (Some(m), Some(o)) if m < o && o + 1 == l) {
            whole += count;
        }
        n += count;
    }
    (n, whole)
}

#[test]
fn cpu_profile_of_a_known_call_chain() {
    // Alone: with several CPU burners sharing the 2 CPUs (the other tests),
    // the scheduler's time slices beat with the sampling clock and the
    // leaves' shares drift (2.5 seen for 2).
    let _l = exclusive_lock();
    let tmp = TmpDir::new("cpu");
    let (out_f, svg, pb) = (
        tmp.file("cpu.folded"),
        tmp.file("cpu.svg"),
        tmp.file("cpu.pb"),
    );
    let out = run(
        tracer().args([
            "profile",
            "-F",
            "499",
            "--folded",
            "-o",
            out_f.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
            "--pprof",
            pb.to_str().unwrap(),
            "--",
            &fx(),
            "cpu",
            "3000",
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&out_f).unwrap();
    let lines = folded(&text);
    let ((a, wa), (b, wb)) = (
        samples_in(&lines, "cpu_leaf_a"),
        samples_in(&lines, "cpu_leaf_b"),
    );
    // Nearly all with the whole chain: a sample on a function's first
    // instructions, before it set its frame pointer, misses its caller (the
    // blind spot of frame-pointer unwinding, perf's too).
    assert!(
        (wa + wb) * 100 >= (a + b) * 95,
        "main -> cpu_outer -> leaf in only {} of {} samples:\n{text}",
        wa + wb,
        a + b
    );
    let total: u64 = lines.iter().map(|l| l.1).sum();
    // 3 s at 499 Hz: about 1500 samples, nearly all in the leaves.
    assert!(total > 300, "too few samples ({total}):\n{text}");
    assert!(a + b > total * 8 / 10, "leaves {a}+{b} of {total}:\n{text}");
    let ratio = a as f64 / b as f64;
    assert!(
        (1.6..=2.4).contains(&ratio),
        "leaf_a:leaf_b = {a}:{b} = {ratio:.2}, not 2 within 20%"
    );
    // Only the command's stacks.
    assert!(lines.iter().all(|(f, _)| f[0] == "fixture"), "{text}");

    // The flame graph: well-formed SVG naming the functions.
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&svg_text, opts)
        .expect("the flame graph is not valid XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    for f in ["cpu_outer", "cpu_leaf_a", "cpu_leaf_b"] {
        assert!(svg_text.contains(f), "{f} missing from the flame graph");
    }

    // pprof: decodes to the same total, leaf first.
    let bytes = std::fs::read(&pb).unwrap();
    let p = pprof_proto::Profile::decode(bytes.as_slice()).expect("pprof decodes");
    assert_eq!(p.string_table[0], "");
    let samples: i64 = p.sample.iter().map(|s| s.value[0]).sum();
    assert_eq!(samples as u64, total, "pprof total != folded total");
    let name_of = |loc_id: u64| {
        let loc = p.location.iter().find(|l| l.id == loc_id).unwrap();
        let f = p
            .function
            .iter()
            .find(|f| f.id == loc.line[0].function_id)
            .unwrap();
        p.string_table[f.name as usize].clone()
    };
    // Samples with cpu_leaf_a on the stack (its own, or a kernel frame under it).
    let leaf_a = p
        .sample
        .iter()
        .filter(|s| {
            s.location_id
                .iter()
                .any(|&l| name_of(l).ends_with("cpu_leaf_a"))
        })
        .map(|s| s.value[0])
        .sum::<i64>();
    assert_eq!(leaf_a as u64, a, "pprof's leaf_a samples != folded's");
    // Leaf first: cpu_leaf_a is the first frame of its own samples.
    assert!(p
        .sample
        .iter()
        .any(|s| name_of(s.location_id[0]).ends_with("cpu_leaf_a")));
}

#[test]
fn table_shows_the_hottest_functions() {
    // Alone, as cpu_profile_of_a_known_call_chain.
    let _l = exclusive_lock();
    let out = run(
        tracer().args(["profile", "-F", "499", "--", &fx(), "cpu", "2000"]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    let row = |f: &str| {
        text.lines()
            .find(|l| l.ends_with(f))
            .unwrap_or_else(|| panic!("no row for {f}:\n{text}"))
            .to_string()
    };
    let pct = |row: &str, i: usize| -> f64 {
        let cols: Vec<&str> = row.split_whitespace().collect();
        cols[i].trim_end_matches('%').parse().unwrap()
    };
    let (a, b, outer) = (row("cpu_leaf_a"), row("cpu_leaf_b"), row("cpu_outer"));
    // Children (total) first, then Self.
    let ratio = pct(&a, 0) / pct(&b, 0);
    assert!(
        (1.6..=2.4).contains(&ratio),
        "total % a/b {ratio:.2}:\n{text}"
    );
    assert!(pct(&a, 1) > 50.0, "cpu_leaf_a's self:\n{text}");
    assert!(pct(&outer, 0) > 80.0, "cpu_outer's total:\n{text}");
    assert!(pct(&outer, 1) < 5.0, "cpu_outer's self:\n{text}");
    assert!(a.contains("[.]"), "user frames marked [.]: {a}");
}

/// JSON stacks of a run.
fn json_stacks(args: &[&str]) -> (Value, Vec<Value>) {
    let out = run(tracer().args(args), LIMIT);
    assert!(out.status.success(), "{args:?}: {out:?}");
    let objs = json_lines(report(args, &out));
    let last = objs.last().expect("a summary object").clone();
    let stacks = last["stacks"].as_array().unwrap().clone();
    (last, stacks)
}

#[test]
fn system_wide_profiles_have_kernel_frames() {
    let _l = shared_lock();
    // Two fixtures making syscalls all along, under their own comms: two
    // processes that run the whole time, whatever else the machine runs (a
    // quiet second CPU once gave a profile of the first fixture alone).
    let mut busy: Vec<std::process::Child> = ["prof-sysw", "prof-sysw2"]
        .iter()
        .map(|comm| {
            fixture()
                .args(["--comm", comm, "geteuid", "40000000"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let (summary, stacks) = json_stacks(&["profile", "-F", "99", "-d", "2", "--json"]);
    for b in &mut busy {
        let _ = b.kill();
        let _ = b.wait();
    }
    // The default samples on the cycle counter where `tracer info` finds one.
    let info = run(tracer().args(["info", "--json"]), LIMIT);
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    let cycles = info["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "cycle counter")
        .unwrap()["available"]
        == true;
    let want = if cycles { "cycles" } else { "cpu-clock" };
    assert_eq!(summary["event"], want, "{}", summary["event"]);
    let kernel = |s: &Value| {
        s["frames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kernel"] == true)
    };
    let ours: Vec<&Value> = stacks.iter().filter(|s| s["comm"] == "prof-sysw").collect();
    assert!(!ours.is_empty(), "the busy fixture was not sampled");
    assert!(
        ours.iter().any(|s| kernel(s)),
        "no kernel frames in a syscall loop's stacks"
    );
    let pids: BTreeSet<u64> = stacks.iter().map(|s| s["pid"].as_u64().unwrap()).collect();
    assert!(pids.len() > 1, "system-wide: more than one process");
    assert!(
        !pids.contains(&0),
        "the idle task is not a running task: {pids:?}"
    );
}

#[test]
fn pid_and_command_profiles_hold_only_their_targets() {
    let _l = shared_lock();
    // Something else burning CPU at the same time.
    let mut other = fixture()
        .args(["--comm", "prof-other", "cpu", "4000"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut target = Waiting::start(&["cpu", "2000"]);
    let pid = target.pid().to_string();
    // The work starts once tracer is attached (its "Tracing" line), however long that takes.
    let (t, _err) = start_attached(tracer().args(["profile", "-F", "99", "--json", "-p", &pid]));
    target.go();
    target.wait();
    let out = wait_output(t, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let objs = json_lines(&out.stdout);
    let stacks = objs.last().unwrap()["stacks"].as_array().unwrap().clone();
    assert!(!stacks.is_empty());
    for s in &stacks {
        assert_eq!(s["pid"].as_u64().unwrap().to_string(), pid, "{s}");
    }

    let args = ["profile", "-F", "99", "--json", "--", &fx(), "cpu", "1000"];
    let (_, stacks) = json_stacks(&args);
    let pids: BTreeSet<u64> = stacks.iter().map(|s| s["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert!(stacks.iter().all(|s| s["comm"] == "fixture"));
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn off_cpu_time_is_where_the_task_slept() {
    let _l = shared_lock();
    let tmp = TmpDir::new("off");
    let out_f = tmp.file("off.folded");
    let out = run(
        tracer().args([
            "profile",
            "--off-cpu",
            "--folded",
            "-o",
            out_f.to_str().unwrap(),
            "--",
            &fx(),
            "offcpu",
            "20",
            "50",
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&out_f).unwrap();
    let lines = folded(&text);
    let slept: u64 = lines
        .iter()
        .filter(|(f, _)| {
            let (o, s) = (pos(f, "offcpu_outer"), pos(f, "offcpu_sleep"));
            matches!((o, s), (Some(o), Some(s)) if o + 1 == s)
        })
        .map(|l| l.1)
        .sum();
    // 20 x 50 ms = 1 s, in microseconds.
    assert!(
        (900_000..=1_300_000).contains(&slept),
        "{slept} us off-CPU in offcpu_sleep, not about 1 s:\n{text}"
    );
    assert!(
        lines
            .iter()
            .any(|(f, _)| pos(f, "offcpu_sleep").is_some() && f.iter().any(|x| x.ends_with("_[k]"))),
        "the kernel side of the sleep (schedule) is missing:\n{text}"
    );
}

#[test]
fn bad_input_is_one_clear_line() {
    let _l = exclusive_lock();
    fails_with(&["profile", "-F", "0", "-d", "1"], 2, "at least 1");
    fails_with(
        &["profile", "-F", "10000000", "-d", "1"],
        1,
        "perf_event_max_sample_rate",
    );
    fails_with(
        &["profile", "--svg", "/nonexistent-dir/x.svg", "-d", "1"],
        1,
        "cannot write the flame graph to /nonexistent-dir/x.svg",
    );
    // A directory.
    let dir = std::env::temp_dir();
    fails_with(
        &["profile", "--pprof", dir.to_str().unwrap(), "-d", "1"],
        1,
        "cannot write the pprof profile",
    );
    fails_with(
        &["profile", "-p", "999999", "-d", "1"],
        1,
        "no process with pid 999999",
    );
    fails_with(&["profile", "--min-block", "5", "-d", "1"], 2, "--off-cpu");
    assert_nothing_loaded("after refused profile runs");
}

#[test]
fn nothing_left_attached() {
    let _l = exclusive_lock();
    for extra in [&[][..], &["--off-cpu"][..]] {
        let mut args = vec!["profile"];
        args.extend_from_slice(extra);
        assert_detaches(&args);
    }
}

/// A program whose file tracer cannot open by its path: run from a tmpfs
/// mounted in another mount namespace (its path is an empty directory here),
/// and deleted while it runs. Its frames are named all the same (through
/// /proc/PID/map_files, read when it was first sampled).
#[test]
fn frames_of_a_program_in_another_mount_namespace_are_named() {
    let _l = shared_lock();
    let tmp = TmpDir::new("ns");
    let dir = tmp.file("ns");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let script = format!(
        "mount -t tmpfs tracer-test {d} && cp {} {d}/fx && \
         {{ {d}/fx cpu 1500 & sleep 0.5; rm {d}/fx; wait; }}",
        fx()
    );
    let out_f = tmp.file("ns.folded");
    let out = run(
        tracer().args([
            "profile",
            "-F",
            "199",
            "--folded",
            "-o",
            out_f.to_str().unwrap(),
            "--",
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "the tmpfs leaked into this namespace"
    );
    let text = std::fs::read_to_string(&out_f).unwrap();
    let lines = folded(&text);
    let named: u64 = lines
        .iter()
        .filter(|(f, _)| f[0] == "fx" && pos(f, "cpu_leaf_a").is_some())
        .map(|l| l.1)
        .sum();
    let all: u64 = lines
        .iter()
        .filter(|(f, _)| f[0] == "fx")
        .map(|l| l.1)
        .sum();
    assert!(all > 100, "too few samples of fx:\n{text}");
    assert!(
        named * 2 > all,
        "cpu_leaf_a not named in the other namespace's program ({named} of {all}):\n{text}"
    );
}

/// A stack map too small for the program's stacks (one slot: a loss is
/// certain, where 64 slots overflowed or not with how the machine ran the
/// fixture, 23 distinct stacks seen): the samples whose stack did not fit
/// are still counted (under a `[lost user stack]` frame) and the
/// loss is reported, in JSON and in the table's head.
#[test]
fn stacks_that_do_not_fit_are_counted_as_lost() {
    let _l = shared_lock();
    let args = [
        "profile",
        "-F",
        "999",
        "--stack-storage-size",
        "1",
        "--json",
        "--",
        &fx(),
        "cpu",
        "1500",
    ];
    let (summary, stacks) = json_stacks(&args);
    let lost = summary["lost"]["user_stack_lost"].as_u64().unwrap_or(0);
    assert!(
        lost > 0,
        "no user stack lost with 1 slot: {}",
        summary["lost"]
    );
    let marked: u64 = stacks
        .iter()
        .filter(|s| {
            s["frames"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["name"] == "[lost user stack]")
        })
        .map(|s| s["value"].as_u64().unwrap())
        .sum();
    assert_eq!(
        marked, lost,
        "samples without their user stack != the count lost"
    );
    let out = run(
        tracer().args([
            "profile",
            "-F",
            "999",
            "--stack-storage-size",
            "1",
            "--",
            &fx(),
            "cpu",
            "1000",
        ]),
        LIMIT,
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("user_stack_lost"), "{text}");
}
