//! `tracer profile` as a pprof profile (protobuf, `profile.proto`), for `go
//! tool pprof`, Pyroscope, Parca, Speedscope and the like. Plain data in,
//! bytes out.
use std::collections::HashMap;

use prost::Message as _;

use super::pprof_proto as pb;
use super::profile::{frames, sorted_stacks, FrameRef};
use crate::collect::profile::{Kind, Profile};

/// The string table: every string once, "" first.
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Strings {
            table: Vec::new(),
            index: HashMap::new(),
        };
        s.get("");
        s
    }

    /// The index of `s`, added when new.
    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }

    fn value_type(&mut self, r#type: &str, unit: &str) -> pb::ValueType {
        pb::ValueType {
            r#type: self.get(r#type),
            unit: self.get(unit),
        }
    }
}

/// A u64 as pprof's int64 (saturating: no profile gets near it).
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `p` as an uncompressed pprof protobuf (pprof and `go tool pprof` read it
/// gzipped or not), starting at `start_unix_nanos`.
///
/// On-CPU profiles are what Go's CPU profiles are, so every tool reads them
/// as CPU time: sample types `samples/count` and `cpu/nanoseconds` (a sample
/// being 1e9/hz ns of CPU), period type `cpu/nanoseconds`, period 1e9/hz.
/// Off-CPU profiles have one sample type, `off_cpu/nanoseconds` (the time
/// switched out; there is no count of switches to give), and the same as
/// period type with period 1 (nothing sampled: every nanosecond is counted).
/// `go tool pprof` shows any sample type; Pyroscope names the profile by
/// these types.
///
/// One Mapping per module (filename the module), one Function and one
/// Location (with one Line, address 0: the frames are symbolized already) per
/// distinct function (name, module, kernel). Samples list locations leaf
/// first, as pprof wants, and carry the labels `comm` (string) and `pid`
/// (number). What the kernel lost is said in comments.
pub fn pprof(p: &Profile, start_unix_nanos: i64) -> Vec<u8> {
    let mut strings = Strings::new();
    let mut out = pb::Profile {
        time_nanos: start_unix_nanos,
        duration_nanos: (p.seconds * 1e9).round() as i64,
        ..Default::default()
    };
    // Nanoseconds of CPU a sample stands for.
    let mut cpu_period = 0;
    match &p.kind {
        Kind::Cpu { event, hz } => {
            cpu_period = 1_000_000_000u64.checked_div(*hz).unwrap_or(0);
            out.sample_type = vec![
                strings.value_type("samples", "count"),
                strings.value_type("cpu", "nanoseconds"),
            ];
            out.period_type = Some(strings.value_type("cpu", "nanoseconds"));
            out.period = int(cpu_period);
            let c = strings.get(&format!(
                "tracer profile: on-CPU, {event} sampled at {hz} Hz on every CPU"
            ));
            out.comment.push(c);
        }
        Kind::OffCpu { min_block_us } => {
            out.sample_type = vec![strings.value_type("off_cpu", "nanoseconds")];
            out.period_type = Some(strings.value_type("off_cpu", "nanoseconds"));
            out.period = 1;
            let c = strings.get(&format!(
                "tracer profile: off-CPU, blocks of at least {min_block_us} us"
            ));
            out.comment.push(c);
        }
    }
    for (reason, n) in &p.lost {
        let c = strings.get(&format!("lost in the kernel: {reason}: {n}"));
        out.comment.push(c);
    }

    let comm_key = strings.get("comm");
    let pid_key = strings.get("pid");
    let mut mappings: HashMap<&str, u64> = HashMap::new();
    // Function and Location ids are the same: one location per function.
    let mut ids: HashMap<FrameRef, u64> = HashMap::new();
    // Heaviest stacks first, so that mapping[0] (pprof's main binary) is
    // the module of the heaviest stack's root.
    for s in sorted_stacks(p) {
        let mut location_id = Vec::with_capacity(s.frames.len().max(1));
        for f in frames(p, s).into_iter().rev() {
            let key = FrameRef {
                symbolized: false,
                ..f
            };
            let id = match ids.get(&key) {
                Some(&id) => id,
                None => {
                    let mapping_id = match mappings.get(f.module) {
                        Some(&id) => id,
                        None => {
                            let id = out.mapping.len() as u64 + 1;
                            out.mapping.push(pb::Mapping {
                                id,
                                filename: strings.get(f.module),
                                // Names are given: nothing for pprof to symbolize.
                                has_functions: true,
                                ..Default::default()
                            });
                            mappings.insert(f.module, id);
                            id
                        }
                    };
                    let id = out.function.len() as u64 + 1;
                    let name = strings.get(f.name);
                    out.function.push(pb::Function {
                        id,
                        name,
                        system_name: name,
                        filename: strings.get(f.module),
                        ..Default::default()
                    });
                    out.location.push(pb::Location {
                        id,
                        mapping_id,
                        line: vec![pb::Line {
                            function_id: id,
                            ..Default::default()
                        }],
                        ..Default::default()
                    });
                    ids.insert(key, id);
                    id
                }
            };
            location_id.push(id);
        }
        let value = match p.kind {
            Kind::Cpu { .. } => vec![int(s.value), int(s.value.saturating_mul(cpu_period))],
            Kind::OffCpu { .. } => vec![int(s.value)],
        };
        let label = vec![
            pb::Label {
                key: comm_key,
                // Index 0 ("") would make it a number label to pprof.
                str: strings.get(if s.comm.is_empty() {
                    "[unknown]"
                } else {
                    &s.comm
                }),
                ..Default::default()
            },
            pb::Label {
                key: pid_key,
                num: i64::from(s.pid),
                ..Default::default()
            },
        ];
        out.sample.push(pb::Sample {
            location_id,
            value,
            label,
        });
    }
    out.string_table = strings.table;
    out.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::profile::tests::{cpu, off_cpu};

    fn decode(bytes: &[u8]) -> pb::Profile {
        pb::Profile::decode(bytes).unwrap()
    }

    fn names(p: &pb::Profile, s: &pb::Sample) -> Vec<String> {
        s.location_id
            .iter()
            .map(|&id| {
                let l = p.location.iter().find(|l| l.id == id).unwrap();
                let f = p
                    .function
                    .iter()
                    .find(|f| f.id == l.line[0].function_id)
                    .unwrap();
                p.string_table[f.name as usize].clone()
            })
            .collect()
    }

    #[test]
    fn cpu_round_trip() {
        let prof = cpu();
        let d = decode(&pprof(&prof, 1_700_000_000_000_000_000));
        let s = |i: i64| d.string_table[i as usize].as_str();
        assert_eq!(d.string_table[0], "");
        assert_eq!(d.time_nanos, 1_700_000_000_000_000_000);
        assert_eq!(d.duration_nanos, 5_000_000_000);
        let types: Vec<(&str, &str)> = d
            .sample_type
            .iter()
            .map(|t| (s(t.r#type), s(t.unit)))
            .collect();
        assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);
        let period = d.period_type.as_ref().unwrap();
        assert_eq!((s(period.r#type), s(period.unit)), ("cpu", "nanoseconds"));
        assert_eq!(d.period, 10_101_010);
        let total: i64 = d.sample.iter().map(|x| x.value[0]).sum();
        assert_eq!(total as u64, prof.total());
        let cpu_ns: i64 = d.sample.iter().map(|x| x.value[1]).sum();
        assert_eq!(cpu_ns, total * 10_101_010);
        // Heaviest first, leaf first.
        assert_eq!(names(&d, &d.sample[0]), ["leaf_a", "outer", "main"]);
        assert_eq!(
            names(&d, &d.sample[2]),
            ["vfs_read", "leaf_b", "outer", "main"]
        );
        for f in ["main", "outer", "leaf_a", "leaf_b", "vfs_read"] {
            assert!(d.string_table.iter().any(|x| x == f), "{f}");
        }
        assert_eq!(d.function.len(), 5);
        assert_eq!(d.location.len(), 5);
        let maps: Vec<&str> = d.mapping.iter().map(|m| s(m.filename)).collect();
        assert_eq!(maps, ["fx", "[kernel]"]);
        let vfs = d.function.iter().find(|f| s(f.name) == "vfs_read").unwrap();
        assert_eq!(s(vfs.filename), "[kernel]");
        assert_eq!(vfs.system_name, vfs.name);
        let loc = d.location.iter().find(|l| l.id == vfs.id).unwrap();
        assert_eq!(loc.mapping_id, 2);
        let labels = &d.sample[0].label;
        assert_eq!(s(labels[0].key), "comm");
        assert_eq!(s(labels[0].str), "fx");
        assert_eq!((s(labels[1].key), labels[1].num), ("pid", 7));
    }

    #[test]
    fn off_cpu_round_trip() {
        let mut prof = off_cpu();
        prof.stacks.push(crate::collect::profile::Stack {
            pid: 9,
            comm: "idle".into(),
            frames: vec![],
            value: 1,
            truncated: false,
            user_end: None,
        });
        prof.lost.insert("counts_full", 3);
        let d = decode(&pprof(&prof, 0));
        let s = |i: i64| d.string_table[i as usize].as_str();
        assert_eq!(d.sample_type.len(), 1);
        assert_eq!(
            (s(d.sample_type[0].r#type), s(d.sample_type[0].unit)),
            ("off_cpu", "nanoseconds")
        );
        let total: i64 = d.sample.iter().map(|x| x.value[0]).sum();
        assert_eq!(total as u64, prof.total());
        assert_eq!(names(&d, d.sample.last().unwrap()), ["[unknown]"]);
        let comments: Vec<&str> = d.comment.iter().map(|&c| s(c)).collect();
        assert!(comments.contains(&"lost in the kernel: counts_full: 3"));
    }
}
