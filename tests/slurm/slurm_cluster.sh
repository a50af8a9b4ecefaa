#!/usr/bin/env bash
# A throwaway single-node Slurm cluster on localhost for the tests: munged, slurmctld and slurmd,
# every file (config, key, state, spool, logs, pids) under DIR; stopped by the pids it recorded.
#   bash tests/slurm/slurm_cluster.sh start DIR [--owner PID]   (prints "export SLURM_CONF=...")
#   bash tests/slurm/slurm_cluster.sh stop DIR
# start: needs root and Debian's slurm-wlm and munge. With --owner, a watchdog stops the cluster
# once process PID has ended, so a test that crashes or is killed leaves no daemon behind.
# stop: cancels the jobs, ends the recorded daemons and anything still running with this
# cluster's SLURM_CONF (job steps, their tasks), each by pid; removes the /etc/hosts line and
# the cgroup mount start added, and nothing else. Safe to run twice.
set -euo pipefail

say() { echo "slurm_cluster: $*"; }
die() {
  echo "slurm_cluster: $*" >&2
  exit 1
}

# A TCP port nobody listens on, from $1 upwards (bash's /dev/tcp: a refused connect means free).
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

# Pids of processes whose environment holds SLURM_CONF=$conf: what this cluster ran (slurmd's
# slurmstepd inherits it, and job scripts and tasks get it from the submitting shell).
processes_with_conf() {
  local p
  for p in /proc/[0-9]*; do
    [[ ${p#/proc/} == "$$" ]] && continue
    { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$conf" && echo "${p#/proc/}"
  done
  return 0
}

# TERM, then KILL after 10 s, for each pid given that still runs.
end_pids() {
  local pid alive
  (($#)) || return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 50); do
    alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || return 0
    sleep 0.2
  done
  kill -KILL "$@" 2>/dev/null || true
}

start() {
  local owner=$1
  [[ $(id -u) -eq 0 ]] || die "needs root (daemons as root, /etc/hosts, mounts)"
  local c
  for c in munged slurmctld slurmd sbatch scontrol setpriv; do
    command -v "$c" >/dev/null || die "no '$c'; install slurm-wlm and munge (bash launch/setup.sh --with-cluster)"
  done
  [[ -e $dir/slurm.conf ]] && die "$dir already holds a cluster; stop it first"
  mkdir -p "$dir"/{state,spool/"$(hostname -s)",log,run,munge}
  : >"$dir/pids"
  # A start that fails half-way undoes what it did.
  trap 'status=$?; ((status == 0)) || stop; exit $status' EXIT

  # slurmctld looks its own host name up before it starts.
  local host
  host=$(hostname)
  if ! getent hosts "$host" >/dev/null; then
    echo "127.0.0.1 $host # vae_dist slurm_cluster $dir" >>/etc/hosts
    echo "added" >"$dir/hosts_line"
    say "added '$host' to /etc/hosts"
  fi
  # slurmd reads /sys/fs/cgroup at start-up even with proctrack/linuxproc. (Where
  # /proc/self/cgroup lists v1 controllers, slurmd refuses a cgroup2 mount: "Hybrid mode is not
  # supported"; mount the machine's own cgroup tree there instead.)
  if ! mountpoint -q /sys/fs/cgroup; then
    mount -t cgroup2 none /sys/fs/cgroup || die "cannot mount cgroup2 at /sys/fs/cgroup"
    echo "mounted" >"$dir/cgroup_mount"
    say "mounted cgroup2 at /sys/fs/cgroup"
  fi

  # munge: a key and a socket of this cluster's own, so a system munged is neither needed nor
  # disturbed. munged runs as the munge user and checks that its files are that user's alone.
  chown munge: "$dir/munge"
  chmod 755 "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chown munge: "$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  local socket=$dir/munge/munge.socket
  setpriv --reuid=munge --regid=munge --init-groups \
    munged --foreground --socket="$socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" </dev/null >"$dir/log/munged.out" 2>&1 &
  echo "$! munged" >>"$dir/pids"
  for _ in $(seq 50); do [[ -S $socket ]] && break; sleep 0.1; done
  [[ -S $socket ]] || { cat "$dir/log/munged.out" "$dir/munge/munged.log" >&2 2>/dev/null; die "munged did not start"; }

  local node ctld_port slurmd_port
  node=$(slurmd -C | head -n 1)
  ctld_port=$(free_port 6817)
  slurmd_port=$(free_port $((ctld_port + 1)))
  cat >"$conf" <<EOF
# Single-node test cluster made by tests/slurm/slurm_cluster.sh; everything under $dir.
ClusterName=vdtest
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: how long a requeued job waits before it may start again (default 120 s; the
# credentials of its earlier run are revoked until then).
AuthInfo=socket=$socket,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
# No systemd, no cgroup hierarchy of our own: track processes by parentage, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MailProg=/bin/true
# Keep finished jobs visible to scontrol for 10 minutes (the tests read their state).
MinJobAge=600
KillWait=10
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

  export SLURM_CONF=$conf
  slurmctld -D -i -f "$conf" </dev/null >"$dir/log/slurmctld.out" 2>&1 &
  echo "$! slurmctld" >>"$dir/pids"
  slurmd -D -f "$conf" </dev/null >"$dir/log/slurmd.out" 2>&1 &
  echo "$! slurmd" >>"$dir/pids"

  if [[ -n $owner ]]; then
    # Its own session, so nothing that ends the owner's process group ends the watchdog.
    setsid bash "${BASH_SOURCE[0]}" watch "$dir" "$owner" </dev/null >"$dir/log/watchdog.out" 2>&1 &
    echo "$! watchdog" >>"$dir/pids"
  fi

  # Up when the node is idle: slurmctld answers and slurmd has registered.
  local state=""
  for _ in $(seq 150); do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -n 1 || true)
    [[ $state == idle ]] && break
    sleep 0.2
  done
  if [[ $state != idle ]]; then
    tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd-"*.log "$dir"/log/*.out >&2 2>/dev/null || true
    die "the node did not become idle (state '${state:-none}'); logs above"
  fi
  say "up: $(sinfo -h -N -o '%N %T %c CPUs')"
  echo "export SLURM_CONF=$conf"
  trap - EXIT
}

stop() {
  [[ -f $dir/pids ]] || return 0
  export SLURM_CONF=$conf
  local pid name watchdog="" daemons=()
  while read -r pid name; do
    case $name in
      watchdog) watchdog=$pid ;;
      *) daemons+=("$pid") ;;
    esac
  done <"$dir/pids"
  # Not the watchdog when it is the one stopping the cluster.
  if [[ -n $watchdog && $watchdog != "$$" && ${VD_SLURM_WATCHDOG:-} != 1 ]]; then
    end_pids "$watchdog"
  fi
  # Jobs first, while slurmctld and slurmd can still end them cleanly.
  if kill -0 "${daemons[@]}" 2>/dev/null; then
    scancel --full --quiet --signal=KILL --user=root 2>/dev/null || true
    for _ in $(seq 25); do
      [[ -z $(squeue -h -t running,completing 2>/dev/null) ]] && break
      sleep 0.2
    done
  fi
  end_pids "${daemons[@]}"
  # What the jobs left: slurmstepd and tasks, found by this cluster's SLURM_CONF.
  mapfile -t leftovers < <(processes_with_conf)
  if ((${#leftovers[@]})); then
    say "ending leftovers: $(ps -o pid=,args= -p "$(IFS=,; echo "${leftovers[*]}")" 2>/dev/null | tr '\n' ';')"
    end_pids "${leftovers[@]}"
  fi
  if [[ -f $dir/hosts_line ]]; then
    local tmp
    tmp=$(grep -vF "# vae_dist slurm_cluster $dir" /etc/hosts || true)
    # In place: /etc/hosts may be a bind mount that a rename would not replace.
    printf '%s\n' "$tmp" >/etc/hosts
    rm -f "$dir/hosts_line"
  fi
  if [[ -f $dir/cgroup_mount ]]; then
    umount /sys/fs/cgroup 2>/dev/null || umount -l /sys/fs/cgroup || true
    rm -f "$dir/cgroup_mount"
  fi
  mv "$dir/pids" "$dir/pids.stopped"
  say "stopped"
}

# Runs in its own session: stops the cluster once the owner process has gone.
watch() {
  local owner=$1
  while kill -0 "$owner" 2>/dev/null; do sleep 1; done
  [[ -f $dir/pids ]] || exit 0
  say "owner $owner has ended; stopping the cluster"
  VD_SLURM_WATCHDOG=1 stop
}

cmd=${1:-}
[[ -n ${2:-} ]] || die "usage: slurm_cluster.sh start|stop DIR [--owner PID]"
dir=$(realpath -m "$2")
conf=$dir/slurm.conf
case $cmd in
  start)
    owner=""
    [[ ${3:-} == --owner ]] && owner=${4:?--owner needs a pid}
    start "$owner"
    ;;
  stop) stop ;;
  watch) watch "$3" ;;
  *) die "unknown command '$cmd'; use start or stop" ;;
esac
