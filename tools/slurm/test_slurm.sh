#!/bin/bash
# make test-slurm: the Slurm array script examples/slurm/generate.sh, run by a real Slurm on a
# private single-node cluster, must produce the same bytes as one `csm generate`, also after a
# task is cancelled mid-shard and resubmitted alone. The copy of the script shown in
# docs/guide/scale-out.md must equal the file (checked first).
#
# Everything lives under .build/slurm-test/ (slurm.conf, cgroup.conf, spool and state
# directories, logs and the job's working folders) except munge's key, socket, pid file, log
# and seed: munged runs as the munge user, who may not be able to enter the checkout (a clone
# under /root, or in a mode-0700 folder), so they live in a folder of their own,
# /tmp/csm-munge.XXXXXX, whose path is kept in .build/slurm-test/run/munge-dir. The daemons
# (munged as the munge user, slurmctld, slurmd as root) are stopped by their process ids
# when the script exits, also on failure, and munge's folder is removed (its log is copied
# to .build/slurm-test/log/munged.log first); a cluster left over from a killed run is
# stopped, and its munge folder removed, first. Needs root (for slurmd, and to install
# slurm-wlm and munge with apt when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CSM=${CSM:-$ROOT/.build/release/csm}
WORK=$ROOT/.build/slurm-test
RUN=$WORK/run                 # pid files, and munge-dir: the path of munge's folder
SCRIPT=$ROOT/examples/slurm/generate.sh
GUIDE=$ROOT/docs/guide/scale-out.md

# Small settings for the script, passed through the environment (sbatch exports it).
export CSM_WORKERS=3 CSM_GROUPS_PER_PAIR=4
export CSM_OPTIONS="--pairs 7:9,0:1,2:4 --lambdas 8 --shard-size 16 --steps 32 --batch 16"   # a shard takes seconds: room to cancel mid-shard
ARRAY=0-$((CSM_WORKERS - 1))

started=$(date +%s)
say() { printf 'test-slurm [%3ds] %s\n' $(($(date +%s) - started)) "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

# --- the guide's copy of the script -----------------------------------------------------------
# The first ```sh block of docs/guide/scale-out.md that has an #SBATCH --array line must be
# examples/slurm/generate.sh, byte for byte (the trailing x keeps final newlines in $(...)).
[ -x "$SCRIPT" ] || fail "$SCRIPT is missing or not executable"
shown=$(awk '/^```/ { if (inblock) { if (script ~ /#SBATCH --array/) { printf "%s", script; exit } inblock = 0; script = "" }
                     else if ($0 == "```sh") inblock = 1; next }
             inblock { script = script $0 "\n" }' "$GUIDE"; echo x)
shown=${shown%x}
[ -n "$shown" ] || fail "docs/guide/scale-out.md shows no \`\`\`sh block with #SBATCH --array: it must show examples/slurm/generate.sh"
file=$(cat "$SCRIPT"; echo x)
if [ "$shown" != "${file%x}" ]; then
    diff <(printf '%s' "$shown") "$SCRIPT" >&2 || true
    fail "the script shown in docs/guide/scale-out.md differs from examples/slurm/generate.sh (diff above: < guide, > file); copy the file into the guide's block"
fi

[ "$(id -u)" = 0 ] || fail "needs root (slurmd, and apt for slurm-wlm/munge)"
[ -x "$CSM" ] || fail "$CSM not built (make build)"

# --- packages -------------------------------------------------------------------------------
missing=""
for p in slurm-wlm munge; do dpkg -s $p >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    say "installing$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# --- stopping a cluster (this run's, or one left over from a killed run) ---------------------
# Job processes are found by their working directory (under $WORK), daemons by their pid files.
stop_pid() {            # pid, expected command name
    local pid=$1 name=$2
    [ -n "$pid" ] && [ -d /proc/$pid ] && [ "$(cat /proc/$pid/comm 2>/dev/null)" = "$name" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do [ -d /proc/$pid ] || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
stop_jobs() {
    local link
    for proc in /proc/[0-9]*; do
        link=$(readlink "$proc/cwd" 2>/dev/null) || continue
        case "$link" in "$WORK"/*) [ "${proc#/proc/}" != $$ ] && kill -KILL "${proc#/proc/}" 2>/dev/null || true ;; esac
    done
}
stop_cluster() {
    local munge_dir
    munge_dir=$(cat "$RUN/munge-dir" 2>/dev/null) || munge_dir=""
    case "$munge_dir" in /tmp/csm-munge.*) ;; *) munge_dir="" ;; esac     # only a folder made below
    if [ -f "$RUN/slurmctld.pid" ] && [ -n "$munge_dir" ] && [ -S "$munge_dir/munge.socket" ]; then
        scancel --quiet --full "--user=$(id -un)" 2>/dev/null || true
    fi
    stop_jobs
    stop_pid "$(cat "$RUN/slurmd.pid" 2>/dev/null)" slurmd
    stop_pid "$(cat "$RUN/slurmctld.pid" 2>/dev/null)" slurmctld
    if [ -n "$munge_dir" ]; then
        stop_pid "$(cat "$munge_dir/munged.pid" 2>/dev/null)" munged
        [ -d "$WORK/log" ] && cp "$munge_dir/munged.log" "$WORK/log/munged.log" 2>/dev/null || true
        rm -rf "$munge_dir"
        rm -f "$RUN/munge-dir"
    fi
    stop_jobs           # slurmstepd's children, if slurmd left any
}
export SLURM_CONF=$WORK/etc/slurm.conf
stop_cluster
trap 'status=$?; stop_cluster; [ $status = 0 ] || say "logs: $WORK/log"; exit $status' EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK"
mkdir -p "$WORK"/{etc,log,spool/ctld,spool/d} "$RUN"
chmod 755 "$WORK" "$RUN"

# --- munge: a private key and socket, the daemon as the munge user --------------------------
# In a folder outside the checkout that the munge user owns: munged must be able to reach it,
# and refuses a socket, log or key whose folder (or a parent) others may write to (/tmp is
# sticky, which munge accepts).
MUNGE=$(mktemp -d /tmp/csm-munge.XXXXXX)
echo "$MUNGE" > "$RUN/munge-dir"                                # stop_cluster removes it
chown munge:munge "$MUNGE"; chmod 755 "$MUNGE"                  # the socket, pid file and log
install -d -o munge -g munge -m 700 "$MUNGE/private"            # the key and the PRNG seed
dd if=/dev/urandom of="$MUNGE/private/munge.key" bs=1024 count=1 status=none
chown munge:munge "$MUNGE/private/munge.key"; chmod 400 "$MUNGE/private/munge.key"
runuser -u munge -- /usr/sbin/munged --key-file="$MUNGE/private/munge.key" --socket="$MUNGE/munge.socket" \
    --pid-file="$MUNGE/munged.pid" --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/private/munged.seed" \
    || fail "munged did not start ($WORK/log/munged.log)"
for _ in $(seq 50); do [ -S "$MUNGE/munge.socket" ] && break; sleep 0.1; done
munge -S "$MUNGE/munge.socket" -n | unmunge -S "$MUNGE/munge.socket" >/dev/null || fail "munged does not answer ($WORK/log/munged.log)"

# --- slurm.conf and cgroup.conf -------------------------------------------------------------
# Two free ports, so that clusters of several checkouts can run side by side.
read -r PORT_CTLD PORT_D < <(python3 -c 'import socket
ports = []
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ports.append(s)
print(*(s.getsockname()[1] for s in ports))')
node=$(slurmd -C | head -1)                     # NodeName=… CPUs=… RealMemory=…: this machine
host=$(hostname -s)
cat > "$WORK/etc/slurm.conf" <<EOF
ClusterName=csmtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT_CTLD
SlurmdPort=$PORT_D
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE/munge.socket
StateSaveLocation=$WORK/spool/ctld
SlurmdSpoolDir=$WORK/spool/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
KillWait=5
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=csm Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
cat > "$WORK/etc/cgroup.conf" <<EOF
CgroupPlugin=cgroup/v1
CgroupAutomount=no
EOF

/usr/sbin/slurmctld -f "$SLURM_CONF"
/usr/sbin/slurmd -f "$SLURM_CONF"
for _ in $(seq 300); do
    state=$(sinfo -h -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
done
[ "$state" = idle ] || fail "node not idle after 60 s (state '$state'; $WORK/log)"
say "cluster up: $(sinfo -h -o '%P %D node, %c CPUs, %m MB, %T')"

# --- the script -------------------------------------------------------------------------------
say "script examples/slurm/generate.sh ($(wc -l < "$SCRIPT") lines, the same as docs/guide/scale-out.md shows): $(grep -m1 '^csm ' "$SCRIPT")"

export PATH=$(dirname "$CSM"):$PATH             # the script calls `csm` from PATH, as on a cluster

# Submits examples/slurm/generate.sh in $1 with extra sbatch options; prints the job id.
submit() {
    local dir=$1; shift
    mkdir -p "$dir"
    (cd "$dir" && sbatch --parsable --output="$WORK/log/job-%A_%a.out" "$@" "$SCRIPT")
}
# Waits for job $1 to leave the queue and prints each task's "id state exit".
wait_job() {
    local job=$1
    for _ in $(seq 1500); do
        [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
        sleep 0.2
    done
    [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] || fail "job $job still queued after 300 s"
    scontrol -o show job "$job" | sed -E 's/.*ArrayTaskId=([0-9]+).* JobState=([A-Z_]+).* ExitCode=([0-9:]+).*/\1 \2 \3/' | sort -n
}
same_files() {          # dir, reference dir: the same file names with the same bytes
    local names
    names=$(cd "$2" && ls -A)
    [ "$(cd "$1" && ls -A)" = "$names" ] || fail "$1 has files [$(cd "$1" && ls -A | tr '\n' ' ')], $2 has [$(echo $names)]"
    for f in $names; do cmp -s "$1/$f" "$2/$f" || fail "$1/$f differs from $2/$f"; done
}

# --- reference: one process -------------------------------------------------------------------
"$CSM" generate --out "$WORK/single" --groups-per-pair "$CSM_GROUPS_PER_PAIR" $CSM_OPTIONS 2>"$WORK/log/single.err" \
    || fail "single-process csm generate failed ($WORK/log/single.err)"
shards=$(ls "$WORK/single" | grep -c '\.h5$')
say "single process: $shards shards"

# --- 1. the array, then csm merge -------------------------------------------------------------
job=$(submit "$WORK/run1" --array="$ARRAY")
say "submitted job $job (array $ARRAY)"
states=$(wait_job "$job")
echo "$states" | sed 's/^/    task /'
[ "$(echo "$states" | grep -c ' COMPLETED 0:0$')" = "$CSM_WORKERS" ] || fail "not every task completed"
(cd "$WORK/run1" && csm merge parts/* --out data/ 2>"$WORK/log/merge1.err") || fail "csm merge failed ($WORK/log/merge1.err)"
same_files "$WORK/run1/data" "$WORK/single"
say "merged array output is byte-identical to the single run ($shards shards + manifest.json)"

# --- 2. a task cancelled mid-shard, resubmitted alone -----------------------------------------
victim=1
job=$(submit "$WORK/run2" --array="$ARRAY")
say "submitted job $job; cancelling task $victim after its first shard"
manifest=$WORK/run2/parts/$victim/manifest.json
for _ in $(seq 6000); do
    [ -f "$manifest" ] && grep -q '\.h5' "$manifest" && break
    sleep 0.05
done
grep -q '\.h5' "$manifest" 2>/dev/null || fail "task $victim finished no shard within 300 s"
scancel "${job}_$victim"
states=$(wait_job "$job")
echo "$states" | sed 's/^/    task /'
echo "$states" | grep -q "^$victim CANCELLED" || fail "task $victim was not cancelled"
listed=$(grep -o '"mixed-[0-9]*\.h5"' "$manifest" | wc -l)
[ "$listed" = 1 ] || fail "task $victim's manifest lists $listed shards: it was not cancelled mid-shard"
say "task $victim cancelled in its second shard (manifest lists 1 shard)"
if (cd "$WORK/run2" && csm merge parts/* --out data/ 2>"$WORK/log/merge-incomplete.err"); then
    fail "csm merge accepted parts that lack a shard"
fi
grep -q "lacks shard" "$WORK/log/merge-incomplete.err" || fail "csm merge did not name the missing shard ($WORK/log/merge-incomplete.err)"
[ ! -e "$WORK/run2/data/manifest.json" ] || fail "the refused csm merge wrote a manifest"
say "csm merge of the incomplete parts refused: $(cat "$WORK/log/merge-incomplete.err")"
job=$(submit "$WORK/run2" --array="$victim")
states=$(wait_job "$job")
echo "$states" | sed 's/^/    task /'
echo "$states" | grep -q "^$victim COMPLETED 0:0$" || fail "resubmitted task $victim did not complete"
grep -q "already done" "$WORK/log/job-${job}_$victim.out" || fail "resubmitted task $victim did not resume ($WORK/log/job-${job}_$victim.out)"
(cd "$WORK/run2" && csm merge parts/* --out data/ 2>"$WORK/log/merge2.err") || fail "csm merge failed ($WORK/log/merge2.err)"
same_files "$WORK/run2/data" "$WORK/single"
say "resubmitted task $victim resumed; merged output is byte-identical to the single run"
say "passed in $(($(date +%s) - started)) s"
