//! Names of JIT-compiled code from perf maps: the text file
//! `/tmp/perf-PID.map` that runtimes write when asked (node
//! `--perf-basic-prof`, python 3.12+ `-X perf`, the JVM with an agent), one
//! `START SIZE NAME` line (hex, hex, the rest) per compiled function, as
//! perf's jit-interface.txt describes.
//!
//! blazesym reads these only while the process runs (it finds the file and
//! the address's mapping through /proc/PID); a profile names its frames at
//! its end, when a `-- CMD` has exited, so the file is opened while the
//! process runs (through its root and its own pid: a container's /tmp) and
//! held, and read when its frames are named.
use std::{
    fs::File,
    io::{Read as _, Seek as _},
};

/// One compiled function.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub start: u64,
    pub end: u64,
    pub name: String,
}

/// The entries of a perf map's text, sorted by start; when a range is
/// listed again (code moved or recompiled), the last line wins. Lines that do
/// not parse are skipped.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut out: Vec<(usize, Entry)> = text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let mut parts = l.splitn(3, ' ');
            let start = u64::from_str_radix(parts.next()?.trim_start_matches("0x"), 16).ok()?;
            let size = u64::from_str_radix(parts.next()?.trim_start_matches("0x"), 16).ok()?;
            let name = parts.next()?.trim_end();
            (size > 0 && !name.is_empty()).then(|| {
                (
                    i,
                    Entry {
                        start,
                        end: start.saturating_add(size),
                        name: name.to_string(),
                    },
                )
            })
        })
        .collect();
    // By start, the latest line first among equal starts.
    out.sort_by(|a, b| a.1.start.cmp(&b.1.start).then(b.0.cmp(&a.0)));
    out.dedup_by(|later, first| later.1.start == first.1.start);
    out.into_iter().map(|(_, e)| e).collect()
}

/// The entry holding `addr`.
pub fn lookup(entries: &[Entry], addr: u64) -> Option<&Entry> {
    let i = entries.partition_point(|e| e.start <= addr);
    i.checked_sub(1)
        .map(|i| &entries[i])
        .filter(|e| addr < e.end)
}

/// A process's perf map, held open, read again when it has grown.
pub struct PerfMap {
    file: File,
    read_len: u64,
    entries: Vec<Entry>,
}

impl PerfMap {
    /// The perf map of process `tgid` (as this process sees it), if it has
    /// one: `/tmp/perf-N.map` in its root, N its pid in its own namespace.
    pub fn open(tgid: u32) -> Option<Self> {
        let own_pid = std::fs::read_to_string(format!("/proc/{tgid}/status"))
            .ok()
            .and_then(|t| {
                let ns = crate::sys::proc::status_field(&t, "NSpid")?;
                ns.split_whitespace().last()?.parse::<u32>().ok()
            })
            .unwrap_or(tgid);
        let file = File::open(format!("/proc/{tgid}/root/tmp/perf-{own_pid}.map")).ok()?;
        Some(Self {
            file,
            read_len: 0,
            entries: Vec::new(),
        })
    }

    /// The function holding `addr`: read again first if the file grew.
    pub fn name(&mut self, addr: u64) -> Option<&str> {
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        if len != self.read_len {
            let mut text = String::new();
            if self.file.rewind().is_ok() && self.file.read_to_string(&mut text).is_ok() {
                self.entries = parse(&text);
                self.read_len = len;
            }
        }
        lookup(&self.entries, addr).map(|e| e.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_lookups() {
        let text = "\
3a1c0c0 40 Builtin:ArgumentsAdaptorTrampoline
7f00001000 80 JS:*fib file:///tmp/f.js:1:13
garbage line
7f00002000 0 zero size
7f00001000 20 JS:~fib file:///tmp/f.js:1:13
0x7f00003000 0x10 py::loop:/tmp/x.py
";
        let e = parse(text);
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!(
            lookup(&e, 0x3a1c0c0).unwrap().name,
            "Builtin:ArgumentsAdaptorTrampoline"
        );
        assert!(lookup(&e, 0x3a1c100).is_none());
        // The later line for the same start wins.
        assert_eq!(
            lookup(&e, 0x7f00001010).unwrap().name,
            "JS:~fib file:///tmp/f.js:1:13"
        );
        assert!(lookup(&e, 0x7f00001030).is_none());
        assert_eq!(lookup(&e, 0x7f0000300f).unwrap().name, "py::loop:/tmp/x.py");
        assert!(lookup(&e, 0).is_none());
    }
}
