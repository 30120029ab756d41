//! Reading the kernel's maps into plain data. Collectors never format text.
pub mod events;
pub mod kfuncs;
pub mod probes;
pub mod syscalls;
