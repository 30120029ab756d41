//! Slot copies: where the kernel has no BPF cookies (or no `bpf_get_func_ip`),
//! a program cannot ask which function or tracepoint it was attached to. So
//! each such program also exists in `tracer_common::SLOTS` copies, copy `n`
//! passing the constant `n` where the cookie would be; user space attaches
//! copy `n` to the n-th function. The copies are thin: each calls one shared
//! body (not inlined), so they add a few instructions each to the object.

/// `slot_copies!(uprobe, uprobe_count, ProbeContext, body)` defines
/// `#[uprobe] fn uprobe_count_slot_0(ctx) -> u32 { body(&ctx, 0) }` and so on
/// up to `uprobe_count_slot_63`: the copies of program `uprobe_count` (user
/// space finds copy n of program P as `P_slot_n`). The body is a static BPF function (`#[inline(never)]`),
/// verified in each copy's context, so the context keeps its type through the
/// call (helpers such as `bpf_get_stackid` accept it).
macro_rules! slot_copies {
    ($hook:meta, $prog:ident, $ctx:ty, $body:path) => {
        slot_copies!(@each $hook, $prog, $ctx, $body,
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
            32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60
            61 62 63);
    };
    (@each $hook:meta, $prog:ident, $ctx:ty, $body:path, $($n:literal)*) => {
        $(
            #[$hook]
            pub fn ${concat($prog, _slot_, $n)}(ctx: $ctx) -> u32 {
                $body(&ctx, $n)
            }
        )*
        const _: () = assert!([$($n),*].len() as u32 == tracer_common::SLOTS);
    };
}
