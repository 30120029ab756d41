//! Reading the kernel's maps into plain data. Collectors never format text.
pub mod events;
pub mod kfuncs;
pub mod syscalls;
pub mod tracepoints;
pub mod uprobes;

/// Counters that only grow: what was counted between two reads.
pub trait Delta {
    fn since(&self, earlier: &Self) -> Self;
}

/// `now - before` per key (a key missing before counts from zero).
pub fn sub_map<K: Ord + Copy, V: Default + Clone>(
    now: &std::collections::BTreeMap<K, V>,
    before: &std::collections::BTreeMap<K, V>,
    f: impl Fn(&V, &V) -> V,
) -> std::collections::BTreeMap<K, V> {
    now.iter()
        .map(|(k, v)| (*k, f(v, before.get(k).unwrap_or(&V::default()))))
        .collect()
}

/// `now - before` per slot.
pub fn sub_slots(now: &[u64], before: &[u64]) -> Vec<u64> {
    now.iter()
        .enumerate()
        .map(|(i, x)| x.saturating_sub(before.get(i).copied().unwrap_or(0)))
        .collect()
}

/// Every slot of a per-CPU array, summed over CPUs with `add`.
pub fn read_array<V: aya::Pod + Default>(
    map: &aya::maps::PerCpuArray<aya::maps::MapData, V>,
    what: &str,
    mut add: impl FnMut(&mut V, &V),
) -> anyhow::Result<Vec<V>> {
    map.iter()
        .map(|v| {
            let v = anyhow::Context::with_context(v, || format!("reading {what}"))?;
            let mut s = V::default();
            for cpu in v.iter() {
                add(&mut s, cpu);
            }
            Ok(s)
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
