//! The kernel's own run-time statistics of BPF programs (`kernel.bpf_stats_enabled`):
//! which programs a tool holds, and their `run_time_ns` / `run_cnt`.
//!
//! Statistics are switched on with `BPF_ENABLE_STATS` rather than by writing the
//! sysctl: the kernel keeps them on for as long as the returned fd is open (the
//! sysctl reads 1 meanwhile) and drops back to the previous state when it is
//! closed, however this process ends, so a failed or interrupted bench never
//! leaves them on, and another user of the sysctl cannot switch them off under us.
use std::{
    collections::BTreeMap,
    os::fd::{FromRawFd as _, OwnedFd},
};

use anyhow::{bail, Result};

const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_ENABLE_STATS: libc::c_long = 32;
const BPF_STATS_RUN_TIME: u32 = 0;

fn bpf(cmd: libc::c_long, attr: &mut [u64; 4]) -> libc::c_long {
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size_of_val(attr)) }
}

/// Run-time statistics on while this lives.
pub struct StatsOn(
    #[expect(dead_code, reason = "held: closing it switches statistics off")] OwnedFd,
);

impl StatsOn {
    pub fn enable() -> Result<Self> {
        let mut attr = [BPF_STATS_RUN_TIME as u64, 0, 0, 0];
        let fd = bpf(BPF_ENABLE_STATS, &mut attr);
        if fd < 0 {
            bail!(
                "BPF_ENABLE_STATS: {} (kernel.bpf_stats_enabled needs Linux 5.8 and root)",
                std::io::Error::last_os_error()
            );
        }
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }
}

/// One program's statistics.
#[derive(Debug, Clone)]
pub struct ProgStat {
    pub name: String,
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

impl ProgStat {
    pub fn ns_per_run(&self) -> f64 {
        self.run_time_ns as f64 / self.run_cnt.max(1) as f64
    }
}

/// The programs a process holds (directly or through links), kept loaded by
/// our own fds so their statistics can still be read after it exits (its
/// links are gone then, so the figures stop where its run stopped).
#[derive(Default)]
pub struct Held {
    progs: BTreeMap<u32, OwnedFd>,
}

impl Held {
    /// Take hold of every program `pid`'s fds refer to (a `prog_id:` line in
    /// their fdinfo: program fds and link fds) that is not held yet.
    pub fn scan(&mut self, pid: u32) {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
            return;
        };
        for e in dir.flatten() {
            let Ok(info) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let Some(id) = info
                .lines()
                .find_map(|l| l.strip_prefix("prog_id:"))
                .and_then(|v| v.trim().parse::<u32>().ok())
            else {
                continue;
            };
            if self.progs.contains_key(&id) {
                continue;
            }
            let mut attr = [id as u64, 0, 0, 0];
            let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr);
            if fd >= 0 {
                self.progs
                    .insert(id, unsafe { OwnedFd::from_raw_fd(fd as i32) });
            }
        }
    }

    /// The held programs that ran, by id.
    pub fn read(&self) -> Result<Vec<ProgStat>> {
        use std::os::fd::AsRawFd as _;
        let mut out = Vec::new();
        for fd in self.progs.values() {
            // struct bpf_prog_info is 232 bytes on 6.x; name at 64, run_time_ns
            // at 192, run_cnt at 200 (older kernels fill less and say so).
            let mut info = [0u64; 29];
            let mut attr = [
                fd.as_raw_fd() as u64 | ((size_of_val(&info) as u64) << 32),
                info.as_mut_ptr() as u64,
                0,
                0,
            ];
            if bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) < 0 {
                bail!(
                    "BPF_OBJ_GET_INFO_BY_FD: {}",
                    std::io::Error::last_os_error()
                );
            }
            let filled = (attr[0] >> 32) as usize;
            if filled < 208 {
                bail!("bpf_prog_info of {filled} bytes has no run_cnt (kernel before 5.1)");
            }
            let bytes: Vec<u8> = info[8..10].iter().flat_map(|w| w.to_ne_bytes()).collect();
            let name = String::from_utf8_lossy(&bytes)
                .trim_end_matches('\0')
                .to_string();
            let (run_time_ns, run_cnt) = (info[24], info[25]);
            if run_cnt > 0 {
                out.push(ProgStat {
                    name,
                    run_time_ns,
                    run_cnt,
                });
            }
        }
        Ok(out)
    }
}
