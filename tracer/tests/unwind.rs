//! `tracer profile` on programs built without frame pointers: user stacks
//! unwound in the kernel from `.eh_frame`. A C program built
//! `-O2 -fomit-frame-pointer` at test time with a known chain and ratio
//! (`main -> outer -> leaf_a` and `-> leaf_b`, 2:1), and Debian's own `xz`,
//! whose samples must reach `__libc_start_call_main` (glibc's frame under
//! `main`) as perf's DWARF unwinding does; and what --unwind fp does there.
mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

/// A directory of one test's own, removed when dropped.
struct TmpDir(PathBuf);

impl TmpDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tracer-unwind-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TmpDir(dir)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The C fixture (tracer-fixtures/c/nofp.c): `outer` calls `leaf_a` twice
/// as long as `leaf_b`, for argv[1] ms of CPU time.
const NOFP_C: &str = include_str!("../../tracer-fixtures/c/nofp.c");

/// Build the C fixture without frame pointers; checks that it has none
/// (no `push %rbp; mov %rsp,%rbp` in `outer`).
fn nofp_program(dir: &Path) -> PathBuf {
    let src = dir.join("nofp.c");
    std::fs::write(&src, NOFP_C).unwrap();
    let bin = dir.join("nofp");
    let out = run(
        Command::new("gcc")
            .args([
                "-O2",
                "-fomit-frame-pointer",
                "-fasynchronous-unwind-tables",
                "-o",
            ])
            .arg(&bin)
            .arg(&src),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "gcc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dis = run(
        Command::new("objdump")
            .args(["-d", "--no-show-raw-insn"])
            .arg(&bin),
        LIMIT,
    );
    let text = String::from_utf8_lossy(&dis.stdout);
    let outer: String = text
        .split("\n\n")
        .find(|f| f.contains("<outer>:"))
        .expect("outer in the disassembly")
        .to_string();
    assert!(
        !outer.contains("mov    %rsp,%rbp"),
        "the fixture was built with frame pointers:\n{outer}"
    );
    bin
}

/// Build `src` (a fixture's text, saved as `name`) with `compiler` and
/// `args` (e.g. `-O2 -fomit-frame-pointer`) into `dir/out`.
fn build(dir: &Path, compiler: &str, name: &str, src: &str, args: &[&str], out: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, src).unwrap();
    let bin = dir.join(out);
    let o = run(
        Command::new(compiler)
            .args([
                "-O2",
                "-fomit-frame-pointer",
                "-fasynchronous-unwind-tables",
            ])
            .args(args)
            .arg("-o")
            .arg(&bin)
            .arg(&path),
        LIMIT,
    );
    assert!(
        o.status.success(),
        "{compiler} {name} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    bin
}

/// More than `min` samples, 95% of them reaching glibc's frame under main
/// (`__libc_start_call_main`); the total.
fn assert_reach_start(what: &str, lines: &[(Vec<String>, u64)], min: u64, text: &str) -> u64 {
    let (total, started) = reaching(lines, "__libc_start_call_main");
    assert!(total > min, "{what}: too few samples ({total}):\n{text}");
    assert!(
        started * 100 >= total * 95,
        "{what}: only {started} of {total} samples reach __libc_start_call_main:\n{text}"
    );
    total
}

/// Samples in `lines`, and those whose stack holds `frame`.
fn reaching(lines: &[(Vec<String>, u64)], frame: &str) -> (u64, u64) {
    let total = lines.iter().map(|l| l.1).sum();
    let held = lines
        .iter()
        .filter(|(f, _)| f.iter().any(|x| x == frame))
        .map(|l| l.1)
        .sum();
    (total, held)
}

/// Of the walked user stacks of a JSON summary, those walked once their
/// process's tables were in place ended complete in 95% of samples; those
/// walked before (`tables_pending`, the process's first moments) are under a
/// quarter.
fn assert_mostly_complete(json: &Value) {
    let ends = &json["user_stack_ends"];
    let n = |k: &str| ends[k].as_u64().unwrap_or(0);
    let walked: u64 = ends
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    let pending = n("tables_pending");
    assert!(pending * 4 < walked, "ends: {ends}");
    assert!(
        n("complete") * 100 >= (walked - pending) * 95,
        "ends: {ends}"
    );
}

/// tracer profile with `args` on `cmd` (`--json`): the stacks walked with
/// their process's tables in place, as (frames root first, kernel ones with
/// `_[k]` as in folded stacks; samples), the JSON text and its summary.
fn profile(args: &[&str], cmd: &[&str]) -> (Vec<(Vec<String>, u64)>, String, Value) {
    let tmp = TmpDir::new("run");
    let j = tmp.0.join("out.json");
    let mut c = tracer();
    // In a directory of its own: node leaves isolate-*.log files there.
    c.current_dir(&tmp.0)
        .args(["profile", "--json", "-o"])
        .arg(&j)
        .args(args)
        .arg("--")
        .args(cmd);
    let out = run(&mut c, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&j).unwrap();
    let json: Value = serde_json::from_str(text.lines().last().expect("a JSON line")).unwrap();
    let lines = placed_lines(&json);
    let shown = shown(&json, &lines);
    (lines, shown, json)
}

/// For a failure's message: how the stacks ended, and the 30 heaviest as
/// folded lines.
fn shown(json: &Value, lines: &[(Vec<String>, u64)]) -> String {
    let mut heavy: Vec<&(Vec<String>, u64)> = lines.iter().collect();
    heavy.sort_by_key(|l| std::cmp::Reverse(l.1));
    let mut out = format!("user_stack_ends: {}\n", json["user_stack_ends"]);
    for (f, n) in heavy.iter().take(30) {
        out += &format!("{} {n}\n", f.join(";"));
    }
    out
}

/// The stacks of a JSON summary walked with their process's tables in place,
/// as (frames root first, kernel ones with `_[k]` as in folded stacks;
/// samples).
fn placed_lines(json: &Value) -> Vec<(Vec<String>, u64)> {
    json["stacks"]
        .as_array()
        .expect("stacks")
        .iter()
        .filter(|s| s["user_stack_end"] != "tables_pending")
        .map(|s| {
            let frames = s["frames"].as_array().expect("frames").iter().map(|f| {
                let name = f["name"].as_str().expect("a name").to_string();
                if f["kernel"] == true {
                    name + "_[k]"
                } else {
                    name
                }
            });
            let comm = s["comm"].as_str().expect("comm").to_string();
            (
                std::iter::once(comm).chain(frames).collect(),
                s["value"].as_u64().expect("value"),
            )
        })
        .collect()
}

/// Samples with `chain`'s last frame, and those whose stack holds `chain` in
/// order (root first, each frame directly under the previous) with `spin`
/// right above it.
fn chain_share(lines: &[(Vec<String>, u64)], chain: &[&str]) -> (u64, u64) {
    let leaf = chain.last().unwrap();
    let (mut n, mut whole) = (0, 0);
    for (frames, count) in lines {
        let Some(l) = frames.iter().position(|f| f == leaf) else {
            continue;
        };
        n += count;
        let start = l + 1 - chain.len().min(l + 1);
        let held = frames[start..=l]
            .iter()
            .map(String::as_str)
            .eq(chain.iter().copied());
        if held && frames.get(l + 1).is_some_and(|f| f == "spin") {
            whole += count;
        }
    }
    (n, whole)
}

#[test]
fn stacks_of_a_program_without_frame_pointers_are_whole() {
    let _l = exclusive_lock();
    let tmp = TmpDir::new("nofp");
    let bin = nofp_program(&tmp.0);
    let bin = bin.to_str().unwrap();
    let (lines, text, json) = profile(&["-F", "499"], &[bin, "2000"]);
    let chain = ["__libc_start_call_main", "main", "outer"];
    let (a, wa) = chain_share(&lines, &[&chain[..], &["leaf_a"]].concat());
    let (b, wb) = chain_share(&lines, &[&chain[..], &["leaf_b"]].concat());
    assert!(
        a + b > 300,
        "too few samples in the leaves ({a}+{b}):\n{text}"
    );
    assert!(
        (wa + wb) * 100 >= (a + b) * 95,
        "__libc_start_call_main -> main -> outer -> leaf -> spin in only {} of {} samples:\n{text}",
        wa + wb,
        a + b
    );
    let ratio = a as f64 / b as f64;
    assert!(
        (1.6..=2.4).contains(&ratio),
        "leaf_a:leaf_b = {a}:{b} = {ratio:.2}, not 2"
    );
    // Every user stack of the program reached its start.
    assert_mostly_complete(&json);

    // Frame pointers only: the same program loses its callers.
    let (lines, text, json) = profile(&["-F", "499", "--unwind", "fp"], &[bin, "1000"]);
    let n: u64 = lines
        .iter()
        .filter(|(f, _)| f.iter().any(|x| x == "spin"))
        .map(|l| l.1)
        .sum();
    let whole: u64 = lines
        .iter()
        .filter(|(f, _)| {
            f.iter().any(|x| x == "spin") && f.iter().any(|x| x == "__libc_start_call_main")
        })
        .map(|l| l.1)
        .sum();
    assert!(n > 100, "{text}");
    assert!(
        whole * 2 < n,
        "--unwind fp reached the start in {whole} of {n} samples: not frame pointers?\n{text}"
    );
    assert_eq!(
        json["user_stack_ends"],
        serde_json::json!({}),
        "--unwind fp walks nothing itself"
    );
}

#[test]
fn debians_xz_unwinds_to_its_start() {
    let _l = exclusive_lock();
    let tmp = TmpDir::new("xz");
    let data = tmp.0.join("data");
    // 12 MB that do not compress: xz works on it for 3 s or so, so its
    // start (the samples before its tables are placed) and its exit (the
    // stack unmapped) are a few percent of its samples, as in real use.
    std::fs::write(&data, random_bytes(12 << 20)).unwrap();
    let xz = "/usr/bin/xz";
    assert!(
        Path::new(xz).exists(),
        "Debian's xz-utils is needed (apt-get install xz-utils)"
    );
    let (lines, text, json) = profile(
        &["-F", "499"],
        &[
            "sh",
            "-c",
            &format!("exec {xz} -9 -T1 -c {} > /dev/null", data.display()),
        ],
    );
    let total = assert_reach_start("xz", &lines, 200, &text);
    // Through liblzma's internal frames (stripped: `liblzma.so.5+0x...`), its
    // `lzma_code`, xz's own (stripped too: `xz+0x...`) and glibc's start, as
    // perf --call-graph dwarf shows: 12 frames and more.
    let deep: u64 = lines
        .iter()
        .filter(|(f, _)| {
            let start = f.iter().position(|x| x == "__libc_start_call_main");
            let lzma = f.iter().position(|x| x == "lzma_code");
            matches!((start, lzma), (Some(s), Some(l)) if s < l) && f.len() >= 12
        })
        .map(|l| l.1)
        .sum();
    assert!(
        deep * 2 >= total,
        "only {deep} of {total} samples through __libc_start_call_main -> ... -> lzma_code, 12 frames deep:\n{text}"
    );
    assert_mostly_complete(&json);
}

/// The C++ fixture (tracer-fixtures/c/cxx.cc): compute loops over an inlined
/// helper, and exceptions thrown three calls deep and caught.
const CXX: &str = include_str!("../../tracer-fixtures/c/cxx.cc");

/// C++ built without frame pointers: samples in inlined code and inside the
/// exception machinery (libstdc++'s __cxa_throw, libgcc's unwinder, both
/// Debian's) unwind to main and glibc's start like the rest.
#[test]
fn cxx_with_inlining_and_exceptions_unwinds_to_main() {
    let _l = exclusive_lock();
    let tmp = TmpDir::new("cxx");
    let bin = build(&tmp.0, "g++", "cxx.cc", CXX, &[], "cxx");
    let (lines, text, json) = profile(&["-F", "499"], &[bin.to_str().unwrap(), "2000"]);
    let total = assert_reach_start("cxx", &lines, 300, &text);
    let in_run = |f: &Vec<String>| {
        let s = f.iter().position(|x| x == "__libc_start_call_main");
        let m = f.iter().position(|x| x == "main");
        let r = f.iter().position(|x| x == "run(double)");
        matches!((s, m, r), (Some(s), Some(m), Some(r)) if s + 1 == m && m + 1 == r)
    };
    // The inlined helper's samples are compute's (blazesym names the
    // function the code is in, as perf report --no-inline does).
    let compute: u64 = lines
        .iter()
        .filter(|(f, _)| in_run(f) && f.last().is_some_and(|x| x == "compute(unsigned long)"))
        .map(|l| l.1)
        .sum();
    // Inside the throw: libstdc++ or libgcc_s frames under thrower.
    let throwing: u64 = lines
        .iter()
        .filter(|(f, _)| {
            let t = f.iter().position(|x| x == "thrower(int)");
            let lib = f.iter().rposition(|x| {
                x == "__cxa_throw" || x.starts_with("_Unwind_") || x.contains("libgcc_s")
            });
            in_run(f) && matches!((t, lib), (Some(t), Some(l)) if t < l)
        })
        .map(|l| l.1)
        .sum();
    assert!(
        compute * 10 >= total,
        "compute(unsigned long) under run() under main in only {compute} of {total} samples:\n{text}"
    );
    assert!(
        throwing * 10 >= total,
        "the exception machinery under thrower(int), main and glibc's start in only {throwing} of {total} samples:\n{text}"
    );
    assert_mostly_complete(&json);
}

/// The dlopen fixture (tracer-fixtures/c/dlopen.c): a program that loads a
/// library after 300 ms of CPU and spins in it.
const DLOPEN_C: &str = include_str!("../../tracer-fixtures/c/dlopen.c");

/// Code in a library loaded after the process was first sampled: its
/// mappings are read again and the library's table placed, so its samples
/// unwind whole (main -> lib_outer -> lib_leaf), named from the library.
#[test]
fn libraries_loaded_after_start_unwind_whole() {
    let _l = exclusive_lock();
    let tmp = TmpDir::new("dlopen");
    let lib = build(
        &tmp.0,
        "gcc",
        "dlopen.c",
        DLOPEN_C,
        &["-DLIB", "-shared", "-fPIC"],
        "libhot.so",
    );
    let bin = build(&tmp.0, "gcc", "dlopen.c", DLOPEN_C, &["-ldl"], "dl");
    let (lines, text, json) = profile(
        &["-F", "499"],
        &[bin.to_str().unwrap(), lib.to_str().unwrap(), "1500"],
    );
    let before: u64 = lines
        .iter()
        .filter(|(f, _)| f.iter().any(|x| x == "before"))
        .map(|l| l.1)
        .sum();
    let (mut leaf, mut whole) = (0, 0);
    for (f, n) in &lines {
        let Some(l) = f.iter().position(|x| x == "lib_leaf") else {
            continue;
        };
        leaf += n;
        if l >= 3 && f[l - 3..l] == ["__libc_start_call_main", "main", "lib_outer"] {
            whole += n;
        }
    }
    assert!(
        before > 50,
        "the samples before dlopen are missing ({before}):\n{text}"
    );
    assert!(leaf > 300, "too few samples in lib_leaf ({leaf}):\n{text}");
    assert!(
        whole * 100 >= leaf * 95,
        "__libc_start_call_main -> main -> lib_outer -> lib_leaf in only {whole} of {leaf} samples:\n{text}"
    );
    assert_mostly_complete(&json);
}

/// `-p PID` on a program that exits mid-profile: tracer ends with it (not
/// at -d), and its frames are named and whole although it is gone by then.
#[test]
fn a_program_that_exits_mid_profile_is_named_and_whole() {
    let _l = exclusive_lock();
    let tmp = TmpDir::new("exits");
    let bin = nofp_program(&tmp.0);
    let mut prog = Command::new(&bin);
    prog.arg("1500");
    let mut child = prog.spawn().unwrap();
    let j = tmp.0.join("out.json");
    let t0 = std::time::Instant::now();
    let mut c = tracer();
    c.args(["profile", "-F", "499", "-d", "60", "--json", "-o"])
        .arg(&j)
        .args(["-p", &child.id().to_string()]);
    let out = run(&mut c, LIMIT);
    let took = t0.elapsed();
    let _ = child.wait();
    assert!(out.status.success(), "{out:?}");
    assert!(
        took < Duration::from_secs(30),
        "tracer -p ran {took:?}: it did not end when its target exited"
    );
    let text = std::fs::read_to_string(&j).unwrap();
    let json: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let lines = placed_lines(&json);
    let text = shown(&json, &lines);
    let chain = ["__libc_start_call_main", "main", "outer"];
    let (a, wa) = chain_share(&lines, &[&chain[..], &["leaf_a"]].concat());
    let (b, wb) = chain_share(&lines, &[&chain[..], &["leaf_b"]].concat());
    assert!(
        a + b > 200,
        "too few samples in the leaves ({a}+{b}):\n{text}"
    );
    assert!(
        (wa + wb) * 100 >= (a + b) * 95,
        "whole in only {} of {} samples:\n{text}",
        wa + wb,
        a + b
    );
    assert_mostly_complete(&json);
}

/// Debian's gzip and python3 (the interpreter's eval loop in C), built
/// without frame pointers: 95% of their samples reach glibc's start.
#[test]
fn debians_gzip_and_python3_unwind_to_their_start() {
    let _l = exclusive_lock();
    let tmp = TmpDir::new("gzip-python");
    let data = tmp.0.join("data");
    std::fs::write(&data, random_bytes(24 << 20)).unwrap();
    let python = "/usr/bin/python3";
    for p in ["/usr/bin/gzip", python] {
        assert!(Path::new(p).exists(), "Debian's {p} is needed");
    }
    let gzip = format!("exec /usr/bin/gzip -9 -c {} > /dev/null", data.display());
    let py = "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)\nwhile True:\n    import time\n    t = time.process_time()\n    fib(22)\n    if t > 2: break";
    for (what, cmd) in [
        ("gzip", vec!["sh", "-c", &gzip]),
        ("python3", vec![python, "-c", py]),
    ] {
        let (lines, text, json) = profile(&["-F", "499"], &cmd);
        assert_reach_start(what, &lines, 200, &text);
        assert_mostly_complete(&json);
    }
}

/// `n` bytes that do not compress.
fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    bytes
}

/// node with `--perf-basic-prof` (Debian's nodejs): its JIT-compiled
/// JavaScript named from /tmp/perf-PID.map (module `[jit]`), the hot function
/// under the script's top level, and the stacks under node's own C++ main.
#[test]
fn node_jit_frames_are_named_from_its_perf_map() {
    let _l = exclusive_lock();
    let node = "/usr/bin/node";
    assert!(
        Path::new(node).exists(),
        "Debian's nodejs is needed (apt-get install nodejs)"
    );
    let tmp = TmpDir::new("node");
    let script = tmp.0.join("hot.js");
    std::fs::write(
        &script,
        "function hotLoop(n) { let s = 0; for (let i = 0; i < n; i++) s += i % 7; return s; }\n\
         const end = Date.now() + 3000; let t = 0;\n\
         while (Date.now() < end) t += hotLoop(100000);\n\
         console.log(t > 0);\n",
    )
    .unwrap();
    let (lines, text, json) = profile(
        &["-F", "499"],
        // V8 inlines a hot function into its caller once it optimizes it
        // (then only the caller is named); --no-turbo-inlining keeps hotLoop
        // a frame of its own, so what is named does not depend on when
        // TurboFan runs.
        &[
            node,
            "--perf-basic-prof",
            "--no-turbo-inlining",
            script.to_str().unwrap(),
        ],
    );
    let (total, _) = reaching(&lines, "");
    // The script's own code: `JS:*hotLoop hot.js:1:17` under the script's
    // top level `JS:* hot.js:1:1`.
    let script_frame = |x: &String| x.starts_with("JS:") && x.contains("hot.js");
    let hot: Vec<&(Vec<String>, u64)> = lines
        .iter()
        .filter(|(f, _)| f.iter().any(script_frame))
        .collect();
    let n_hot: u64 = hot.iter().map(|l| l.1).sum();
    let named_hot: u64 = lines
        .iter()
        .filter(|(f, _)| {
            f.iter()
                .any(|x| x.starts_with("JS:") && x.contains("hotLoop"))
        })
        .map(|l| l.1)
        .sum();
    assert!(
        n_hot * 2 >= total && named_hot * 2 >= total,
        "the script's JS frames in only {n_hot} of {total} samples, hotLoop in {named_hot}:\n{text}"
    );
    // node's main hands over to node::Start (a tail call: main is not on
    // the stack, as perf shows it too).
    let under_main: u64 = hot
        .iter()
        .filter(|(f, _)| {
            let s = f.iter().position(|x| x == "__libc_start_call_main");
            let n = f.iter().position(|x| x == "node::Start(int, char**)");
            matches!((s, n), (Some(s), Some(n)) if s + 1 == n)
        })
        .map(|l| l.1)
        .sum();
    assert!(
        under_main * 100 >= n_hot * 95,
        "the script's frames under node::Start and glibc's start in only {under_main} of {n_hot} samples:\n{text}"
    );
    // node leaves its perf map behind, as perf expects: removed here.
    for pid in json["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["pid"].as_u64())
    {
        let _ = std::fs::remove_file(format!("/tmp/perf-{pid}.map"));
    }
    let modules: Vec<&str> = json["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["frames"].as_array().unwrap().iter())
        .filter(|f| f["name"].as_str().is_some_and(|n| n.contains("hotLoop")))
        .filter_map(|f| f["module"].as_str())
        .collect();
    assert!(
        !modules.is_empty() && modules.iter().all(|m| *m == "[jit]"),
        "hotLoop's module: {modules:?}"
    );
}

/// User frames named the same way by both profilers (not `[unknown]`, not
/// `file+0x...`, no kernel frames), runs of the same frame merged (perf
/// names a function's inlined callees after it, tracer the function once).
fn named_user_frames<'a>(frames: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in frames {
        if f.ends_with("_[k]") || f.starts_with('[') || f.contains("+0x") {
            continue;
        }
        if out.last().is_some_and(|l| l == f) {
            continue;
        }
        out.push(f.to_string());
    }
    out
}

/// `perf record --call-graph dwarf` of `cmd` at 499 Hz (cpu-clock), folded by
/// inferno: (frames of each stack without the comm, samples).
fn perf_dwarf(dir: &Path, cmd: &[&str]) -> Vec<(Vec<String>, u64)> {
    use inferno::collapse::{perf::Folder, Collapse as _};
    let data = dir.join("perf.data");
    let rec = run(
        Command::new("perf")
            .args([
                "record",
                "-q",
                "-e",
                "cpu-clock",
                "-F",
                "499",
                "--call-graph",
                "dwarf",
                "-o",
            ])
            .arg(&data)
            .arg("--")
            .args(cmd),
        LIMIT,
    );
    assert!(rec.status.success(), "perf record: {rec:?}");
    let script = run(
        Command::new("perf")
            .args(["script", "--no-inline", "-i"])
            .arg(&data),
        LIMIT,
    );
    assert!(script.status.success(), "perf script: {:?}", script.status);
    let mut folded = Vec::new();
    let mut opts = inferno::collapse::perf::Options::default();
    opts.annotate_kernel = true;
    Folder::from(opts)
        .collapse(&script.stdout[..], &mut folded)
        .expect("inferno folds perf script's output");
    String::from_utf8_lossy(&folded)
        .lines()
        .filter_map(|l| {
            let (stack, n) = l.rsplit_once(' ')?;
            let frames = stack.split(';').skip(1).map(str::to_string).collect();
            Some((frames, n.parse().ok()?))
        })
        .collect()
}

/// Stacks reduced to `named_user_frames` from glibc's frame under main
/// (what is above it, `_start` and `__libc_start_main`, perf names or
/// leaves out by its version), merged: sequence -> samples.
fn named_stacks<'a>(
    lines: impl Iterator<Item = (&'a [String], u64)>,
) -> std::collections::BTreeMap<Vec<String>, u64> {
    let mut out = std::collections::BTreeMap::new();
    for (frames, n) in lines {
        let mut named = named_user_frames(frames.iter().map(String::as_str));
        if let Some(i) = named.iter().position(|f| f == "__libc_start_call_main") {
            named.drain(..i);
        }
        *out.entry(named).or_default() += n;
    }
    out
}

/// Debian's xz, gzip and python3 profiled by tracer and by `perf record
/// --call-graph dwarf` (which copies each sample's stack and unwinds it
/// afterwards): tracer reaches glibc's start in as many samples (within 5
/// points), and perf's five heaviest whole call chains (of 5% of its
/// samples or more), in the frames both name, are tracer's chains too.
#[test]
fn frames_agree_with_perf_dwarf() {
    let _l = exclusive_lock();
    assert!(
        Path::new("/usr/bin/perf").exists(),
        "perf is needed (cargo xtask setup installs linux-perf)"
    );
    let tmp = TmpDir::new("perf");
    let data = tmp.0.join("data");
    std::fs::write(&data, random_bytes(8 << 20)).unwrap();
    let xz = format!("exec /usr/bin/xz -9 -T1 -c {} > /dev/null", data.display());
    let gzip = format!(
        "exec /usr/bin/gzip -9 -c {} {0} {0} > /dev/null",
        data.display()
    );
    let py = "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)\nimport time\nwhile time.process_time() < 2: fib(20)";
    for (what, cmd) in [
        ("xz", vec!["sh", "-c", &xz]),
        ("gzip", vec!["sh", "-c", &gzip]),
        ("python3", vec!["/usr/bin/python3", "-c", py]),
    ] {
        let perf = perf_dwarf(&tmp.0, &cmd);
        let (lines, text, _) = profile(&["-F", "499"], &cmd);
        let start = "__libc_start_call_main";
        let share = |l: &[(Vec<String>, u64)]| {
            let (total, held) = reaching(l, start);
            held as f64 / total.max(1) as f64
        };
        let (ours, theirs) = (share(&lines), share(&perf));
        eprintln!(
            "{what}: {start} in {:.1}% of tracer's samples, {:.1}% of perf's",
            ours * 100.0,
            theirs * 100.0
        );
        assert!(
            ours >= theirs - 0.05,
            "{what}: {start} in {:.1}% of tracer's samples, {:.1}% of perf's:\n{text}",
            ours * 100.0,
            theirs * 100.0
        );
        let ours = named_stacks(lines.iter().map(|(f, n)| (&f[1..], *n)));
        let theirs = named_stacks(perf.iter().map(|(f, n)| (&f[..], *n)));
        // Chains of 5% of perf's samples and more (among light ones, the
        // two name some addresses apart: memcpy and memmove are one code).
        let all: u64 = theirs.values().sum();
        let mut heavy: Vec<(&Vec<String>, &u64)> = theirs
            .iter()
            .filter(|(f, n)| f.first().is_some_and(|x| x == start) && **n * 20 >= all)
            .collect();
        heavy.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
        assert!(!heavy.is_empty(), "{what}: perf has no whole stack");
        for (chain, n) in heavy.into_iter().take(5) {
            assert!(
                ours.contains_key(chain),
                "{what}: perf's chain {} ({n} samples) is not among tracer's:\n{}",
                chain.join(";"),
                ours.keys()
                    .take(40)
                    .map(|k| k.join(";"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}
