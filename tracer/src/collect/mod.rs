//! Reading the kernel's maps into plain data. Collectors never format text.
pub mod events;
pub mod kfuncs;
pub mod probes;
pub mod syscalls;

use anyhow::{Context as _, Result};
use aya::Ebpf;

/// Take map `name` out of the loaded object as its concrete type.
pub fn take<T: TryFrom<aya::maps::Map>>(ebpf: &mut Ebpf, name: &str) -> Result<T>
where
    T::Error: std::error::Error + Send + Sync + 'static,
{
    let map = ebpf
        .take_map(name)
        .with_context(|| format!("map {name} missing from the object"))?;
    T::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
}
