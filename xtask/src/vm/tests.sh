# The in-VM checks of `cargo xtask vm-test`. This script only runs commands and
# prints their output between markers; xtask parses and judges it.
N=${N:-2000}
# Every tracer run is bounded (timeout 60): one that hangs fails its own check.

# Wait until FILE holds a line starting with WORD, or PID is gone.
wait_for() {
    i=0
    while ! grep -q "^$2" "$1" 2>/dev/null; do
        kill -0 "$3" 2>/dev/null || return 1
        i=$((i + 1))
        [ $i -gt 600 ] && return 1
        usleep 100000
    done
}

# A fixture that waits, tracer attached to its pid, then exactly N reads of /dev/zero.
traced_reads() {
    name=$1 backend=$2
    shift 2
    rm -f /tmp/go /tmp/fx.out /tmp/out /tmp/err
    mkfifo /tmp/go
    exec 3<>/tmp/go
    fixture --wait read-zero "$N" <&3 >/tmp/fx.out &
    fx=$!
    echo "VMTEST-PID $name $backend $fx"
    wait_for /tmp/fx.out ready $fx
    if [ "$backend" = auto ]; then
        timeout 60 tracer kprobe -p $fx "$@" >/tmp/out 2>/tmp/err &
    else
        timeout 60 tracer kprobe --backend "$backend" --json -p $fx "$@" >/tmp/out 2>/tmp/err &
    fi
    tr=$!
    wait_for /tmp/err Tracing $tr
    echo go >&3
    wait $tr
    rc=$?
    wait $fx
    exec 3>&-
    echo "VMTEST-BEGIN $name $backend"
    cat /tmp/out
    echo "VMTEST-STDERR"
    cat /tmp/err
    echo "VMTEST-END $name $backend rc=$rc"
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
        tracer kprobe --backend "$backend" vfs_read >/dev/null 2>/tmp/cerr &
        tr=$!
        wait_for /tmp/cerr Tracing $tr
    fi
    usleep 300000
    t0=$(cut -d' ' -f1 /proc/uptime)
    fixture read-zero "$R"
    t1=$(cut -d' ' -f1 /proc/uptime)
    if [ -n "$tr" ]; then
        kill -INT $tr
        wait $tr
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

# tracer info must find kprobes and fentry here (the host kernel has neither).
timeout 60 tracer info --json >/tmp/out 2>/tmp/err
rc=$?
echo "VMTEST-BEGIN info auto"
cat /tmp/out
echo "VMTEST-STDERR"
cat /tmp/err
echo "VMTEST-END info auto rc=$rc"

# tracer syscalls on this kernel: raw tracepoints, task-local storage, fork following.
timeout 60 tracer syscalls --json -o /tmp/out -- fixture forks 3 100 >/dev/null 2>/tmp/err
rc=$?
echo "VMTEST-BEGIN syscalls auto"
cat /tmp/out
echo "VMTEST-STDERR"
cat /tmp/err
echo "VMTEST-END syscalls auto rc=$rc"
