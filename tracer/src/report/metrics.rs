//! `tracer serve`'s metrics: plain numbers turned into metric families, and
//! the families into the OpenMetrics text (prometheus-client's encoder) or
//! the Prometheus text format 0.0.4 derived from it.
use std::fmt::Write as _;

use prometheus_client::{
    encoding::{text, DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
    registry::Registry,
};

/// A metric family: one name, one type, its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Without `_total` for counters (the encoder adds it).
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
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
        }
    }

    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: Value) {
        self.samples.push(Sample { labels, value });
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

#[derive(Debug)]
struct Families(Vec<Family>);

impl prometheus_client::collector::Collector for Families {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let kind = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut m = enc.encode_descriptor(f.name, f.help, None, kind)?;
            for s in &f.samples {
                let mut e = m.encode_family(&s.labels)?;
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
                        let mut b = buckets.clone();
                        b.push((f64::INFINITY, *count));
                        // The encoder wants per-bucket counts; it sums them.
                        let mut prev = 0;
                        for x in &mut b {
                            let c = x.1;
                            x.1 -= prev;
                            prev = c;
                        }
                        e.encode_histogram::<NoLabelSet>(*sum, *count, &b, None)?
                    }
                }
            }
        }
        Ok(())
    }
}

/// The families in the OpenMetrics text format (ends with `# EOF`).
pub fn openmetrics(families: Vec<Family>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families(families)));
    let mut out = String::with_capacity(1 << 16);
    // Writing to a String cannot fail.
    let _ = text::encode(&mut out, &registry);
    out
}

/// The same metrics in the Prometheus text format 0.0.4: a counter's
/// `# HELP` and `# TYPE` name its `_total` samples, and there is no `# EOF`.
pub fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line.starts_with("# HELP ") {
            if let Some(h) = help.replace(line) {
                let _ = writeln!(out, "{h}");
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let counter = kind == "counter";
            if let Some(h) = help.take() {
                match (
                    counter,
                    h.strip_prefix("# HELP ").and_then(|r| r.strip_prefix(name)),
                ) {
                    (true, Some(text)) => {
                        let _ = writeln!(out, "# HELP {name}_total{text}");
                    }
                    _ => {
                        let _ = writeln!(out, "{h}");
                    }
                }
            }
            if counter {
                let _ = writeln!(out, "# TYPE {name}_total counter");
            } else {
                let _ = writeln!(out, "{line}");
            }
            continue;
        }
        if let Some(h) = help.take() {
            let _ = writeln!(out, "{h}");
        }
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Family> {
        let mut c = Family::new("tracer_syscalls", "Syscalls entered.", Kind::Counter);
        c.push(vec![("syscall", "read".into())], Value::Int(5));
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
        vec![c, h, g]
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
    fn both_text_formats() {
        let om = openmetrics(sample());
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
        let prom = prometheus_text(&om);
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
