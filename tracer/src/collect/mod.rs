//! Reading the kernel's maps into plain data. Collectors never format text.
pub mod kfuncs;
pub mod syscalls;
