//! `tracer serve`'s metrics: families of samples, written in the Prometheus
//! text format 0.0.4 or in OpenMetrics 1.0.
//!
//! The writer is ours, not prometheus-client's: its encoder took 19 ms for
//! 40,000 series (a per-sample encoder object, label sets through
//! `fmt::Write`), twice the whole scrape budget; this one writes the same
//! bytes (a test holds them equal to prometheus-client's on every kind of
//! family) in a few. Numbers are formatted by the crates prometheus-client
//! uses, itoa and dtoa.
use std::sync::Arc;

use smallvec::SmallVec;

/// A sample's labels: no family here has more than two, kept inline (a
/// scrape makes tens of thousands of samples).
pub type Labels = SmallVec<[(&'static str, Arc<str>); 2]>;

/// A metric family: one name, one type, its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Without `_total` for counters (the encoder adds it).
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
    /// More samples (after `samples`), for a counter with many series.
    pub table: Option<Table>,
}

/// Many samples of one integer family with the same two label keys, whose
/// values repeat (a syscall name, a comm): each value is kept once, escaped,
/// and a sample is two indexes and a number.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub keys: [&'static str; 2],
    /// The values of each key, escaped.
    pub values: [Vec<Arc<str>>; 2],
    pub rows: Vec<([u32; 2], u64)>,
}

impl Table {
    pub fn new(keys: [&'static str; 2]) -> Self {
        Self {
            keys,
            ..Self::default()
        }
    }

    /// Add a value of key `k`; returns its index for `rows`.
    pub fn value(&mut self, k: usize, v: &str) -> u32 {
        let mut e = String::with_capacity(v.len());
        push_escaped(&mut e, v);
        self.values[k].push(e.into());
        (self.values[k].len() - 1) as u32
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
    /// Cumulative buckets (upper bound in seconds, count), without +Inf.
    Hist {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

impl Family {
    pub fn new(name: &'static str, help: &'static str, kind: Kind) -> Self {
        Self {
            name,
            help,
            kind,
            samples: Vec::new(),
            table: None,
        }
    }

    pub fn push(
        &mut self,
        labels: impl IntoIterator<Item = (&'static str, Arc<str>)>,
        value: Value,
    ) {
        self.samples.push(Sample {
            labels: labels.into_iter().collect(),
            value,
        });
    }
}

/// The log2 slots exported as histogram buckets: the bucket `le = 2^s ns`
/// for every second slot from 2^8 ns (256 ns) to 2^36 ns (68.7 s), 15 buckets
/// and +Inf, so a syscall's histogram is 18 series, not one per kernel slot.
pub const BUCKET_SLOTS: std::ops::RangeInclusive<usize> = 8..=36;

/// A histogram from log2 slots in BCC's layout (slot `s` holds
/// `[2^(s-1), 2^s - 1]` ns; slot 0 unused), and the exact sum of the values
/// in nanoseconds. The bucket `le = 2^s ns` holds slots 0..=s: values up to
/// 2^s - 1 ns (a value of exactly 2^s ns, which the bound includes, falls in
/// the next bucket: the kernel's slots end one below the powers of two).
pub fn log2_histogram(slots: &[u64], sum_ns: u64) -> Value {
    let mut buckets = Vec::new();
    let mut cumulative = 0u64;
    for (s, n) in slots.iter().enumerate() {
        cumulative += n;
        if BUCKET_SLOTS.contains(&s) && (s - BUCKET_SLOTS.start()).is_multiple_of(2) {
            buckets.push(((1u64 << s) as f64 / 1e9, cumulative));
        }
    }
    // Slots shorter than the last bound: the remaining buckets hold everything.
    let mut s = BUCKET_SLOTS.start() + 2 * buckets.len();
    while s <= *BUCKET_SLOTS.end() {
        buckets.push(((1u64 << s) as f64 / 1e9, cumulative));
        s += 2;
    }
    Value::Hist {
        sum: sum_ns as f64 / 1e9,
        count: cumulative,
        buckets,
    }
}

/// A label value made of the words of a reason ("entry table full" ->
/// "entry_table_full").
pub fn snake(words: &str) -> String {
    let mut out = String::with_capacity(words.len());
    for c in words.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// A label value with `\`, `"` and newlines escaped.
fn push_escaped(out: &mut String, v: &str) {
    if !v.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `name{le="..",k="v",...} ` (the `le` first, as prometheus-client has it).
fn push_series(
    out: &mut String,
    name: &str,
    suffix: &str,
    le: Option<&str>,
    labels: &[(&str, Arc<str>)],
) {
    out.push_str(name);
    out.push_str(suffix);
    if le.is_some() || !labels.is_empty() {
        out.push('{');
        let mut first = true;
        if let Some(le) = le {
            out.push_str("le=\"");
            out.push_str(le);
            out.push('"');
            first = false;
        }
        for (k, v) in labels {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            push_escaped(out, v);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
}

fn push_u64(out: &mut String, v: u64) {
    out.push_str(itoa::Buffer::new().format(v));
    out.push('\n');
}

fn push_f64(out: &mut String, v: f64) {
    out.push_str(dtoa::Buffer::new().format(v));
    out.push('\n');
}

/// The families in OpenMetrics 1.0 (`openmetrics`) or the Prometheus text
/// format 0.0.4: the same samples; 0.0.4 names a counter's `# HELP` and
/// `# TYPE` after its `_total` samples and has no `# EOF`.
pub fn encode(families: &[Family], openmetrics: bool) -> String {
    let samples: usize = families
        .iter()
        .map(|f| f.samples.len() + f.table.as_ref().map_or(0, |t| t.rows.len()))
        .sum();
    let mut out = String::with_capacity(64 * samples + 4096);
    let mut dtoa = dtoa::Buffer::new();
    // The bounds of `log2_histogram`, formatted once.
    let bounds: Vec<(f64, String)> = BUCKET_SLOTS
        .step_by(2)
        .map(|s| {
            let le = (1u64 << s) as f64 / 1e9;
            (le, dtoa::Buffer::new().format(le).to_string())
        })
        .collect();
    for f in families {
        let (kind, head_suffix) = match (f.kind, openmetrics) {
            (Kind::Counter, true) => ("counter", ""),
            (Kind::Counter, false) => ("counter", "_total"),
            (Kind::Gauge, _) => ("gauge", ""),
            (Kind::Histogram, _) => ("histogram", ""),
        };
        for line in ["# HELP ", "# TYPE "] {
            out.push_str(line);
            out.push_str(f.name);
            out.push_str(head_suffix);
            out.push(' ');
            out.push_str(if line == "# HELP " { f.help } else { kind });
            out.push('\n');
        }
        let suffix = if f.kind == Kind::Counter {
            "_total"
        } else {
            ""
        };
        for s in &f.samples {
            match &s.value {
                Value::Int(v) => {
                    push_series(&mut out, f.name, suffix, None, &s.labels);
                    push_u64(&mut out, *v);
                }
                Value::Float(v) => {
                    push_series(&mut out, f.name, suffix, None, &s.labels);
                    push_f64(&mut out, *v);
                }
                Value::Hist {
                    sum,
                    count,
                    buckets,
                } => {
                    push_series(&mut out, f.name, "_sum", None, &s.labels);
                    push_f64(&mut out, *sum);
                    push_series(&mut out, f.name, "_count", None, &s.labels);
                    push_u64(&mut out, *count);
                    for (le, n) in buckets {
                        let le = match bounds.iter().find(|b| b.0 == *le) {
                            Some(b) => b.1.as_str(),
                            None => dtoa.format(*le),
                        };
                        push_series(&mut out, f.name, "_bucket", Some(le), &s.labels);
                        push_u64(&mut out, *n);
                    }
                    push_series(&mut out, f.name, "_bucket", Some("+Inf"), &s.labels);
                    push_u64(&mut out, *count);
                }
            }
        }
        if let Some(t) = &f.table {
            let [k0, k1] = t.keys;
            for ([a, b], n) in &t.rows {
                out.push_str(f.name);
                out.push_str(suffix);
                out.push('{');
                out.push_str(k0);
                out.push_str("=\"");
                out.push_str(&t.values[0][*a as usize]);
                out.push_str("\",");
                out.push_str(k1);
                out.push_str("=\"");
                out.push_str(&t.values[1][*b as usize]);
                out.push_str("\"} ");
                push_u64(&mut out, *n);
            }
        }
    }
    if openmetrics {
        out.push_str("# EOF\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Family> {
        let mut c = Family::new("tracer_syscalls", "Syscalls entered.", Kind::Counter);
        c.push(vec![("syscall", "read".into())], Value::Int(5));
        c.push(
            vec![("syscall", "read".into()), ("comm", "a \"b\"\\c\nd".into())],
            Value::Int(7),
        );
        let mut cpu = Family::new("process_cpu_seconds", "CPU.", Kind::Counter);
        cpu.push(Vec::new(), Value::Float(0.25));
        let mut h = Family::new(
            "tracer_syscall_duration_seconds",
            "Syscall durations.",
            Kind::Histogram,
        );
        let mut slots = vec![0u64; 40];
        slots[9] = 2; // 256..511 ns
        slots[12] = 1; // 2048..4095 ns
        slots[39] = 1; // very long
        h.push(
            vec![("syscall", "read".into())],
            log2_histogram(&slots, 5000),
        );
        let mut g = Family::new("tracer_build_info", "Build.", Kind::Gauge);
        g.push(vec![("version", "0.1.0".into())], Value::Int(1));
        g.push(Vec::new(), Value::Float(1.5e9));
        h.push(Vec::new(), log2_histogram(&[0, 3], 2));
        vec![c, cpu, h, g]
    }

    /// prometheus-client's OpenMetrics text of the same families: the oracle.
    fn by_prometheus_client(families: &[Family]) -> String {
        use prometheus_client::{
            encoding::{text, DescriptorEncoder, NoLabelSet},
            metrics::MetricType,
            registry::Registry,
        };
        #[derive(Debug)]
        struct F(Vec<Family>);
        impl prometheus_client::collector::Collector for F {
            fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                for f in &self.0 {
                    let kind = match f.kind {
                        Kind::Counter => MetricType::Counter,
                        Kind::Gauge => MetricType::Gauge,
                        Kind::Histogram => MetricType::Histogram,
                    };
                    let mut m = enc.encode_descriptor(f.name, f.help, None, kind)?;
                    for s in &f.samples {
                        let labels: Vec<(&str, &str)> =
                            s.labels.iter().map(|(k, v)| (*k, &**v)).collect();
                        let mut e = m.encode_family(&labels)?;
                        match (&s.value, f.kind) {
                            (Value::Int(v), Kind::Counter) => {
                                e.encode_counter::<NoLabelSet, _, u64>(v, None)?
                            }
                            (Value::Float(v), Kind::Counter) => {
                                e.encode_counter::<NoLabelSet, _, f64>(v, None)?
                            }
                            (Value::Int(v), _) => e.encode_gauge(&(*v as i64))?,
                            (Value::Float(v), _) => e.encode_gauge(v)?,
                            (
                                Value::Hist {
                                    sum,
                                    count,
                                    buckets,
                                },
                                _,
                            ) => {
                                // prometheus-client takes each bucket's own count.
                                let mut b = buckets.clone();
                                b.push((f64::INFINITY, *count));
                                let mut prev = 0;
                                for x in &mut b {
                                    (x.1, prev) = (x.1 - prev, x.1);
                                }
                                e.encode_histogram::<NoLabelSet>(*sum, *count, &b, None)?
                            }
                        }
                    }
                }
                Ok(())
            }
        }
        let mut registry = Registry::default();
        registry.register_collector(Box::new(F(families.to_vec())));
        let mut out = String::new();
        text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn buckets_from_log2_slots() {
        let mut slots = vec![0u64; 40];
        slots[8] = 1; // 128..255 ns: in le=256ns
        slots[9] = 2; // 256..511 ns: in le=1024ns
        slots[39] = 1;
        let Value::Hist {
            sum,
            count,
            buckets,
        } = log2_histogram(&slots, 1000)
        else {
            unreachable!()
        };
        assert_eq!(count, 4);
        assert_eq!(sum, 1e-6);
        assert_eq!(buckets.len(), 15);
        assert_eq!(buckets[0], (256e-9, 1));
        assert_eq!(buckets[1], (1024e-9, 3));
        assert_eq!(buckets[14].1, 3, "the 275 s call is only in +Inf");
        // BCC's 65 slots give the same bounds.
        let Value::Hist { buckets: b65, .. } = log2_histogram(&[0; 65], 0) else {
            unreachable!()
        };
        let bounds: Vec<f64> = buckets.iter().map(|b| b.0).collect();
        assert_eq!(b65.iter().map(|b| b.0).collect::<Vec<_>>(), bounds);
        // Fewer slots than the last bound.
        let Value::Hist { buckets, .. } = log2_histogram(&[0, 1, 1], 0) else {
            unreachable!()
        };
        assert_eq!(buckets.len(), 15);
        assert!(buckets.iter().all(|b| b.1 == 2));
    }

    #[test]
    fn openmetrics_as_prometheus_client_writes_it() {
        let ours = encode(&sample(), true);
        assert_eq!(ours, by_prometheus_client(&sample()));
    }

    #[test]
    fn a_table_writes_what_its_samples_would() {
        let mut by_samples = Family::new("tracer_syscalls", "Calls.", Kind::Counter);
        let mut by_table = by_samples.clone();
        let mut t = Table::new(["syscall", "comm"]);
        let (read, write) = (t.value(0, "read"), t.value(0, "write"));
        let odd = t.value(1, "a\"b\\c");
        let plain = t.value(1, "bash");
        for (sc, (c, cv), n) in [
            ((read, "read"), (odd, "a\"b\\c"), 3),
            ((write, "write"), (plain, "bash"), 4),
        ]
        .map(|((a, an), (b, bn), n)| ((a, an), (b, bn), n))
        {
            by_samples.push(
                [("syscall", sc.1.into()), ("comm", cv.into())],
                Value::Int(n),
            );
            t.rows.push(([sc.0, c], n));
        }
        by_table.table = Some(t);
        for om in [true, false] {
            assert_eq!(
                encode(&[by_table.clone()], om),
                encode(&[by_samples.clone()], om)
            );
        }
    }

    #[test]
    fn both_text_formats() {
        let om = encode(&sample(), true);
        assert!(om.contains("# TYPE tracer_syscalls counter\n"), "{om}");
        assert!(
            om.contains("tracer_syscalls_total{syscall=\"read\"} 5\n"),
            "{om}"
        );
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(
            om.contains("tracer_syscall_duration_seconds_bucket{le=\"+Inf\",syscall=\"read\"} 4"),
            "{om}"
        );
        let prom = encode(&sample(), false);
        assert!(
            prom.contains("# HELP tracer_syscalls_total Syscalls entered.\n"),
            "{prom}"
        );
        assert!(
            prom.contains("# TYPE tracer_syscalls_total counter\n"),
            "{prom}"
        );
        assert!(
            prom.contains("tracer_syscalls_total{syscall=\"read\"} 5\n"),
            "{prom}"
        );
        assert!(!prom.contains("# EOF"), "{prom}");
        assert!(prom.contains("# TYPE tracer_build_info gauge\n"), "{prom}");
        assert!(
            prom.contains("tracer_syscall_duration_seconds_count{syscall=\"read\"} 4\n"),
            "{prom}"
        );
    }

    #[test]
    fn reasons_as_label_values() {
        assert_eq!(snake("entry table full"), "entry_table_full");
        assert_eq!(snake("entry-time table full"), "entry_time_table_full");
    }
}
