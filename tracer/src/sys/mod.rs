//! Facts about the running system: syscall names, tracefs, /proc, launching a child.
pub mod btf;
pub mod cgroup;
pub mod container;
pub mod elf;
pub mod kfuncs;
pub mod launch;
pub mod mountns;
pub mod names;
pub mod perfmap;
pub mod pidns;
pub mod privileges;
pub mod proc;
pub mod symbols;
pub mod tracefs;
pub mod unwind;
