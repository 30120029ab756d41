//! The names the end-to-end tests check for leftovers come from tracer's own
//! eBPF object: make sure that parse finds them, so the check is never vacuous.
mod common;

#[test]
fn our_programs_and_maps_are_read_from_the_object() {
    let ours = common::ours();
    for map in [
        "SYSCALL_STATS",
        "STARTS", // a BTF map, in `.maps`
        "EVENTS",
        "KFUNC_STACKS",
        "UPROBE_STATS",
        "TRACED_TGIDS",
    ] {
        assert!(
            ours.maps.iter().any(|m| m == map),
            "{map} missing from {:?}",
            ours.maps
        );
    }
    for prog in [
        "sys_enter",
        "sys_exit",
        "uprobe_count",
        "uretprobe_latency",
        "kp_count",
        "fe_count",
        "sched_process_fork",
    ] {
        assert!(
            ours.programs.iter().any(|p| p == prog),
            "{prog} missing from {:?}",
            ours.programs
        );
    }
    // Globals (.rodata) are not maps; helpers in .text are not programs; and
    // a program is not a map nor a map a program.
    for not_map in ["FLAGS", "TARGET_UID", "LICENSE", "sys_enter"] {
        assert!(
            !ours.maps.iter().any(|m| m == not_map),
            "{not_map} is no map"
        );
    }
    for not_prog in ["memset", "memcpy", "SYSCALL_STATS"] {
        assert!(
            !ours.programs.iter().any(|p| p == not_prog),
            "{not_prog} is no program"
        );
    }
    assert!(ours.maps.len() >= 30, "{:?}", ours.maps);
    assert!(ours.programs.len() >= 30, "{:?}", ours.programs);
}
