//! Reading the kernel's maps into plain data. Collectors never format text.
pub mod events;
pub mod kfuncs;
pub mod profile;
pub mod series;
pub mod syscalls;
pub mod tcp;
pub mod tracepoints;
pub mod uprobes;

use std::collections::BTreeMap;

/// Counters that only grow: what was counted between two reads.
pub trait Delta {
    fn since(&self, earlier: &Self) -> Self;
}

/// A per-CPU value: summed over CPUs with `add`.
pub trait Counter: Copy + Default + Delta {
    fn add(&mut self, other: &Self);
}

impl Delta for u64 {
    fn since(&self, earlier: &u64) -> u64 {
        self.saturating_sub(*earlier)
    }
}

impl Counter for u64 {
    fn add(&mut self, other: &u64) {
        *self += other;
    }
}

/// Counter structs of u64 fields; the `wrapping` ones (a sum of signed
/// values) may go down, the others only grow.
macro_rules! counter {
    ($t:ty: $($f:ident),* $(; wrapping $w:ident)?) => {
        impl Delta for $t {
            fn since(&self, e: &Self) -> Self {
                Self {
                    $($f: self.$f.saturating_sub(e.$f),)*
                    $($w: self.$w.wrapping_sub(e.$w),)?
                }
            }
        }
        impl Counter for $t {
            fn add(&mut self, o: &Self) {
                $(self.$f += o.$f;)*
                $(self.$w = self.$w.wrapping_add(o.$w);)?
            }
        }
    };
}
counter!(tracer_common::SyscallStat: calls, errors, total_ns);
counter!(tracer_common::FuncStat: calls, returns, total_ns);
counter!(tracer_common::TpStat: count; wrapping sum);

/// Per key; a key missing before counts from zero.
impl<K: Ord + Copy, V: Delta + Default> Delta for BTreeMap<K, V> {
    fn since(&self, before: &Self) -> Self {
        let zero = V::default();
        self.iter()
            .map(|(k, v)| (*k, v.since(before.get(k).unwrap_or(&zero))))
            .collect()
    }
}

/// Per slot; a slot missing before counts from zero.
impl<T: Delta + Default> Delta for Vec<T> {
    fn since(&self, before: &Self) -> Self {
        let zero = T::default();
        self.iter()
            .enumerate()
            .map(|(i, x)| x.since(before.get(i).unwrap_or(&zero)))
            .collect()
    }
}

impl<T: Delta, const N: usize> Delta for [T; N] {
    fn since(&self, before: &Self) -> Self {
        std::array::from_fn(|i| self[i].since(&before[i]))
    }
}

/// Per-CPU values summed.
pub fn sum<T: Counter>(per_cpu: &[T]) -> T {
    per_cpu.iter().fold(T::default(), |mut s, v| {
        s.add(v);
        s
    })
}

/// Every slot of a per-CPU array, summed over CPUs.
pub fn read_array<V: aya::Pod + Counter>(
    map: &aya::maps::PerCpuArray<aya::maps::MapData, V>,
    what: &str,
) -> anyhow::Result<Vec<V>> {
    map.iter()
        .map(|v| {
            Ok(sum(&anyhow::Context::with_context(v, || {
                format!("reading {what}")
            })?))
        })
        .collect()
}

/// The non-zero drop counters with their names.
pub fn named_drops(names: &[(u32, &'static str)], drops: &[u64]) -> Vec<(&'static str, u64)> {
    names
        .iter()
        .filter_map(|&(i, name)| {
            let n = drops[i as usize];
            (n > 0).then_some((name, n))
        })
        .collect()
}

/// Log2 slots of item `i` in a flat `LOG2_SLOTS`-per-item array.
pub fn slots_of(flat: &[u64], i: usize) -> Vec<u64> {
    let n = tracer_common::LOG2_SLOTS as usize;
    flat.get(i * n..(i + 1) * n)
        .map(<[u64]>::to_vec)
        .unwrap_or_else(|| vec![0; n])
}

/// A `FuncStat`, for the collectors' tests.
#[cfg(test)]
pub fn func_stat(calls: u64, returns: u64, total_ns: u64) -> tracer_common::FuncStat {
    tracer_common::FuncStat {
        calls,
        returns,
        total_ns,
    }
}
