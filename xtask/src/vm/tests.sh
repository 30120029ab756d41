# The in-VM checks of `cargo xtask vm-test`. This script only runs commands and
# prints their output between markers; xtask parses and judges it.
N=${N:-2000}
L=${L:-100}
# Every tracer run is bounded (timeout 60): one that hangs fails its own check.

# Whether PID is still running (a zombie, not yet waited for, is not).
running() {
    [ -e "/proc/$1" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# `wait_for FILE WORD PID STEP`: wait until FILE holds a line starting with
# WORD (0), or PID is gone (1), at most 60 s: past that, a VMTEST-BOUND line
# names STEP (xtask fails the run on it) and the result is 1.
wait_for() {
    _wf_i=0
    while ! grep -q "^$2" "$1" 2>/dev/null; do
        running "$3" || return 1
        _wf_i=$((_wf_i + 1))
        if [ $_wf_i -gt 600 ]; then
            echo "VMTEST-BOUND $4: no line '$2' in $1 after 60 s"
            return 1
        fi
        usleep 100000
    done
}

# `bounded_wait PID STEP [SECONDS]`: `wait PID` (its exit status), at most
# SECONDS (90): past that, a VMTEST-BOUND line names STEP, PID is killed and
# the result is 124.
bounded_wait() {
    _bw_i=0
    _bw_limit=${3:-90}
    while running "$1"; do
        _bw_i=$((_bw_i + 1))
        if [ $_bw_i -gt $((_bw_limit * 10)) ]; then
            echo "VMTEST-BOUND $2: pid $1 still running after $_bw_limit s, killed"
            kill -KILL "$1" 2>/dev/null
            wait "$1" 2>/dev/null
            return 124
        fi
        usleep 100000
    done
    wait "$1"
}

# One run's output between markers: FILE as its stdout part, ERRFILE as its stderr part.
section() {
    echo "VMTEST-BEGIN $1 $2"
    cat "$4"
    echo "VMTEST-STDERR"
    cat "$5"
    echo "VMTEST-END $1 $2 rc=$3"
}

# `run NAME VARIANT tracer ARGS...`: a bounded run; its stdout and stderr as a section.
run() {
    name=$1 variant=$2
    shift 2
    rm -f /tmp/out /tmp/err
    timeout 60 "$@" >/tmp/out 2>/tmp/err
    section "$name" "$variant" $? /tmp/out /tmp/err
}

# `attached NAME VARIANT MODE "FIXTURE ARGS" TRACER ARGS...`: a fixture that
# waits (--wait), tracer started and attached ("Tracing" on its stderr), then
# the fixture's work. MODE pid: tracer gets `-p PID` and ends with the fixture;
# MODE all: system-wide, stopped with SIGINT (Ctrl-C) once the fixture is done.
attached() {
    name=$1 variant=$2 mode=$3 fxargs=$4
    shift 4
    rm -f /tmp/go /tmp/fx.out /tmp/out /tmp/err
    mkfifo /tmp/go
    exec 3<>/tmp/go
    # shellcheck disable=SC2086
    fixture --wait $fxargs <&3 >/tmp/fx.out &
    fx=$!
    echo "VMTEST-PID $name $variant $fx"
    wait_for /tmp/fx.out ready $fx "$name $variant: the fixture's ready"
    [ "$mode" = pid ] && set -- "$@" -p $fx
    # busybox timeout execs the command in this pid: $! is tracer's.
    timeout 60 tracer "$@" >/tmp/out 2>/tmp/err &
    tr=$!
    wait_for /tmp/err Tracing $tr "$name $variant: tracer's Tracing line"
    echo go >&3
    bounded_wait $fx "$name $variant: the fixture's work"
    if [ "$mode" = all ]; then
        # Events still in the ring buffer are drained before the final report.
        usleep 300000
        kill -INT $tr 2>/dev/null
    fi
    bounded_wait $tr "$name $variant: tracer's end"
    rc=$?
    exec 3>&-
    section "$name" "$variant" $rc /tmp/out /tmp/err
}

# A fixture that waits, tracer kprobe attached to its pid, then exactly N reads of /dev/zero.
traced_reads() {
    name=$1 backend=$2
    shift 2
    if [ "$backend" = auto ]; then
        attached "$name" auto pid "read-zero $N" kprobe "$@"
    else
        attached "$name" "$backend" pid "read-zero $N" kprobe --backend "$backend" --json "$@"
    fi
}

# `-- CMD` with fork following: sh forks the fixture, which makes M reads
# after a start-up whose reads do not depend on M; run with M=0 and M=N.
launched_reads() {
    backend=$1
    for m in 0 "$N"; do
        timeout 60 tracer kprobe --backend "$backend" --json vfs_read -- sh -c "fixture read-zero $m; true" >/tmp/out 2>/tmp/err
        rc=$?
        echo "VMTEST-BEGIN cmd$m $backend"
        cat /tmp/out
        echo "VMTEST-STDERR"
        cat /tmp/err
        echo "VMTEST-END cmd$m $backend rc=$rc"
    done
}

# Attach to a glob of ~100 functions for a moment: the attach time per probe
# (tracer's stderr is this section's stdout).
attach_glob() {
    backend=$1
    timeout 60 tracer kprobe --backend "$backend" -d 0.5 'vfs_*' >/dev/null 2>/tmp/err
    rc=$?
    echo "VMTEST-BEGIN attach $backend"
    cat /tmp/err
    echo "VMTEST-END attach $backend rc=$rc"
}

# Guest wall time of $R reads with vfs_read counted system-wide by BACKEND (or none).
cost() {
    backend=$1
    tr=
    if [ "$backend" != none ]; then
        # A fresh file: the last round's "Tracing" line must not count.
        rm -f /tmp/cerr
        tracer kprobe --backend "$backend" vfs_read >/dev/null 2>/tmp/cerr &
        tr=$!
        if ! wait_for /tmp/cerr Tracing $tr "cost $backend: tracer's Tracing line"; then
            # No measurement of an untraced loop under a tracer's name.
            kill -INT $tr 2>/dev/null
            bounded_wait $tr "cost $backend: tracer's end after a failed start"
            echo "VMTEST-COST-FAILED $backend $(head -n 1 /tmp/cerr)"
            return
        fi
    fi
    usleep 300000
    t0=$(cut -d' ' -f1 /proc/uptime)
    fixture read-zero "$R"
    t1=$(cut -d' ' -f1 /proc/uptime)
    if [ -n "$tr" ]; then
        kill -INT $tr
        bounded_wait $tr "cost $backend: tracer's end on SIGINT"
    fi
    echo "VMTEST-COST $backend $t0 $t1"
}

for b in kprobe fentry; do
    traced_reads count $b vfs_read
    traced_reads latency $b --latency vfs_read
    traced_reads stack $b --stack vfs_read
    traced_reads perproc $b -P vfs_read
    launched_reads $b
    attach_glob $b
done
# The text reports, with the backend tracer picks.
traced_reads text-count auto vfs_read
traced_reads text-latency auto --latency vfs_read
traced_reads text-stack auto --stack vfs_read

# Interleaved rounds; xtask keeps the fastest of each (TCG timings are noisy).
for round in 1 2 3; do
    cost none
    cost kprobe
    cost fentry
done
echo "VMTEST-BEGIN default auto"
timeout 30 tracer kprobe -d 0.2 vfs_read 2>&1 >/dev/null | grep '^Using'
echo "VMTEST-END default auto rc=0"

# tracer info: what this kernel offers (the checks need kprobes and fentry).
run info auto tracer info --json

# tracer syscalls -- CMD: raw tracepoints, fork following, exact counts.
rm -f /tmp/report
timeout 60 tracer syscalls --json -o /tmp/report -- fixture forks 3 100 >/dev/null 2>/tmp/err
section syscalls auto $? /tmp/report /tmp/err

# tracer syscalls system-wide: the plainest run counts a syscall nothing else
# makes exactly; --comm and -e count a fixture's reads of /dev/zero (the runs
# with 0 and N reads differ by exactly N); -P gives the fixture its own row.
attached syscalls-all auto all "rare $N" syscalls --json --all
for m in 0 "$N"; do
    attached syscalls-comm "$m" all "--comm fxsw read-zero $m" syscalls --comm fxsw -e read --json
done
attached syscalls-P auto all "syscalls $N 0" syscalls -P -e getppid --json

# --cgroup (cgroup v2, decided in the kernel): the command's first fixture runs
# outside the group, then the shell moves itself in and the second one runs
# there; only the second one's L calls count.
mkdir -p /sys/fs/cgroup/tcg
rm -f /tmp/report
timeout 60 tracer syscalls --cgroup tcg --json -o /tmp/report -- \
    sh -c "fixture rare $N; echo \$\$ > /sys/fs/cgroup/tcg/cgroup.procs; exec fixture rare $L" >/dev/null 2>/tmp/err
section syscalls cgroup $? /tmp/report /tmp/err

# tracer in a PID namespace of its own (a container without the host's pids):
# the count of a forked fixture, and the pid of trace's events, which must be
# the one the fixture has there (what `$$` says before `exec`), appended to the
# report as a last JSON line.
rm -f /tmp/report
timeout 60 unshare -p -f --mount-proc tracer syscalls --json -o /tmp/report -- \
    sh -c "fixture rare $L; true" >/dev/null 2>/tmp/err
section pidns syscalls $? /tmp/report /tmp/err
rm -f /tmp/report /tmp/nspid
timeout 60 unshare -p -f --mount-proc tracer trace --json -e sched_get_priority_max -o /tmp/report -- \
    sh -c "echo \$\$ >/tmp/nspid; exec fixture rare $L" >/dev/null 2>/tmp/err
rc=$?
echo "{\"type\":\"nspid\",\"pid\":$(cat /tmp/nspid 2>/dev/null || echo null)}" >>/tmp/report
section pidns trace $rc /tmp/report /tmp/err

# tracer tcp -- CMD: the fixture's loopback connections, K bytes each way
# from client to server and 100 back: both sockets of each as they close, over
# IPv4 and IPv6 (tcp_sock's offsets from this kernel's BTF); the accepts (the
# fd walk's offsets); the failed connects; and --retransmits attached (its
# tracepoint's layout differs between kernels).
run tcp close tracer tcp --json -- fixture tcp 5 3000
run tcp close6 tracer tcp --json -- fixture tcp 3 2000 ::1
run tcp accept tracer tcp --json --accept -- fixture tcp 3 100
run tcp refused tracer tcp --json --connect -- fixture tcp-refused 2
run tcp retransmits tracer tcp --retransmits -d 1

# tracer trace -- CMD: one line per call (sh forks the fixture, L getppid
# calls), and sh's exit code passed through; --json on known file calls.
run trace text tracer trace -e getppid,exit_group -- sh -c "fixture syscalls $L 0; exit 3"
rm -rf /tmp/tj && mkdir -p /tmp/tj && echo x >/tmp/tj/exists
run trace json tracer trace --json -T -e openat,unlink -- fixture files /tmp/tj

# tracer exec -- CMD: sh, the fixture it forks, the fixture's 3 children, and sh's exit code.
run exec cmd tracer exec --json -- sh -c "$EXEC_SH"

# tracer uprobe -- CMD: the fixture's function called exactly N times.
run uprobe count tracer uprobe /bin/fixture:tracer_fixture_work --json -- fixture work "$N"
run uprobe latency tracer uprobe -L /bin/fixture:tracer_fixture_work --json -- fixture work "$N"

# tracer tracepoint -- CMD: the command's exec and its 3 children's, per
# process; a histogram of write sizes (the report in a file: the fixture's
# writes go to /dev/null).
run tracepoint exec tracer tracepoint sched:sched_process_exec -P --json -- fixture execs 3
rm -f /tmp/report
timeout 60 tracer tracepoint syscalls:sys_enter_write --hist count --json -o /tmp/report \
    -- fixture writes 0 1 100 1000 5000 5000 70000 >/dev/null 2>/tmp/err
section tracepoint hist $? /tmp/report /tmp/err

# tracer serve: a fixture's L getppid calls under its comm, with a comm label
# (rows in memory-mapped arrays), histograms and a tracepoint, read back over
# HTTP (busybox wget); SIGTERM ends it with 0.
rm -f /tmp/out /tmp/err /tmp/metrics
timeout 60 tracer serve --listen 127.0.0.1:9852 --comm fxsrv --by comm \
    --tracepoint sched:sched_process_exec >/tmp/out 2>/tmp/err &
tr=$!
wait_for /tmp/err Serving $tr "serve comm: tracer's Serving line"
fixture --comm fxsrv syscalls "$L" 0
# wget's own complaint, if any, goes with tracer's stderr into the section.
timeout 30 wget -O /tmp/metrics http://127.0.0.1:9852/metrics 2>>/tmp/err
kill -TERM $tr
bounded_wait $tr "serve comm: tracer's end on SIGTERM"
section serve comm $? /tmp/metrics /tmp/err

# tracer profile: CPU samples of a known call chain (2:1 between two
# leaves), and off-CPU time of known sleeps (10 x 50 ms), as folded stacks;
# with -- CMD the report is on stderr.
rm -f /tmp/out /tmp/err /tmp/folded
timeout 60 tracer profile -F 499 --folded -o /tmp/folded -- fixture cpu 3000 >/tmp/out 2>/tmp/err
section profile cpu $? /tmp/folded /tmp/err
rm -f /tmp/out /tmp/err /tmp/folded
# The same chain in C built without frame pointers: unwound from .eh_frame.
# JSON: each stack says how its walk ended (the process's first samples are
# walked before its tables are in place).
timeout 60 tracer profile -F 499 --json -o /tmp/folded -- nofp 3000 >/tmp/out 2>/tmp/err
section profile nofp $? /tmp/folded /tmp/err
rm -f /tmp/out /tmp/err /tmp/folded
timeout 60 tracer profile --off-cpu --folded -o /tmp/folded -- fixture offcpu 10 50 >/tmp/out 2>/tmp/err
section profile offcpu $? /tmp/folded /tmp/err

# tracer list: kernel functions, tracepoints and their fields, user functions.
run list kprobes tracer list kprobes 'vfs_*'
run list tracepoints tracer list tracepoints 'sched:*'
run list fields tracer list tracepoints sched:sched_process_fork -v
run list uprobes tracer list uprobes /bin/fixture 'tracer_fixture_*'

# Nothing stays loaded when tracer is killed with SIGKILL once attached: every
# attach kind (on 5.10 uprobes, tracepoints and kprobes hang on their perf
# event by ioctl, there being no perf-event bpf_link). Programs go when their
# last fd closes; bpftool is asked for a while (freeing is not instant).
killed() {
    name=$1
    shift
    rm -f /tmp/out /tmp/err
    tracer "$@" >/dev/null 2>/tmp/err &
    tr=$!
    wait_for /tmp/err Tracing $tr "killed $name: tracer's Tracing line"
    kill -KILL $tr
    bounded_wait $tr "killed $name: tracer's end on SIGKILL" 2>/dev/null
    i=0
    while :; do
        bpftool prog list >/tmp/out 2>&1
        rc=$?
        [ $rc -ne 0 ] || [ ! -s /tmp/out ] || [ $i -ge 30 ] && break
        i=$((i + 1))
        usleep 100000
    done
    section killed "$name" $rc /tmp/out /tmp/err
}
killed syscalls syscalls -L
killed trace trace -p 1
killed uprobe uprobe -L /bin/fixture:tracer_fixture_work
killed tracepoint tracepoint sched:sched_process_exec syscalls:sys_enter_getppid
killed kprobe kprobe --backend kprobe -L vfs_read
killed fentry kprobe --backend fentry -L vfs_read
killed serve serve --listen 127.0.0.1:9853 --by pid --tracepoint sched:sched_process_exec
killed profile profile -F 99
killed offcpu profile --off-cpu
killed tcp tcp --retransmits
