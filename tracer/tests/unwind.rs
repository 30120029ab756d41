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
    c.args(["profile", "--json", "-o"])
        .arg(&j)
        .args(args)
        .arg("--")
        .args(cmd);
    let out = run(&mut c, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&j).unwrap();
    let json: Value = serde_json::from_str(text.lines().last().expect("a JSON line")).unwrap();
    let lines = json["stacks"]
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
        .collect();
    (lines, text, json)
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
    let mut bytes = vec![0u8; 12 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&data, &bytes).unwrap();
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
    let total: u64 = lines.iter().map(|l| l.1).sum();
    let started: u64 = lines
        .iter()
        .filter(|(f, _)| f.iter().any(|x| x == "__libc_start_call_main"))
        .map(|l| l.1)
        .sum();
    assert!(total > 200, "too few samples ({total}):\n{text}");
    assert!(
        started * 100 >= total * 95,
        "only {started} of {total} samples of xz reach __libc_start_call_main:\n{text}"
    );
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
