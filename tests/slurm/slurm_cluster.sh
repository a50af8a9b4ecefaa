#!/usr/bin/env bash
# A throwaway Slurm cluster for the tests: munged, slurmctld and slurmd on localhost, or one
# slurmd per network-namespace host (tests/support/netns_hosts.sh); every file (config, key,
# state, spool, logs, pids) under DIR; stopped by the pids it recorded.
#   bash tests/slurm/slurm_cluster.sh start DIR [--owner PID] [--hosts N]
#   bash tests/slurm/slurm_cluster.sh run DIR CMD [ARGS...]   (a client command: sbatch, scontrol)
#   bash tests/slurm/slurm_cluster.sh stop DIR
# start: needs root and Debian's slurm-wlm and munge (and iproute2 for --hosts). --hosts N makes
# hosts <id>-h1 .. <id>-hN, slurmctld on h1; client commands must then run on a host, which
# `run` does (it also sets SLURM_CONF). With --owner, a watchdog stops the cluster once process
# PID has ended, so a test that crashes or is killed leaves no daemon behind.
# stop: cancels the jobs, ends the recorded daemons and anything still running with this
# cluster's SLURM_CONF (job steps, their tasks), each by pid; removes the hosts, the /etc/hosts
# line and the mounts start added, and nothing else. Safe to run twice.
set -euo pipefail

netns=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/support/netns_hosts.sh

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

# Runs a client command against this cluster: on host 1 when the cluster has hosts.
run() {
  export SLURM_CONF=$conf
  if [[ -f $dir/netns_id ]]; then
    exec bash "$netns" exec "$(cat "$dir/netns_id")-h1" "$@"
  fi
  exec "$@"
}

# Starts a daemon in the background and records its pid under name $1. On a host the command
# goes through netns_hosts.sh exec, ip netns exec, unshare and sh, each of which execs the next,
# so the pid is the daemon's own.
daemon() {
  local name=$1
  shift
  "$@" </dev/null >"$dir/log/$name.out" 2>&1 &
  echo "$! $name" >>"$dir/pids"
}

start() {
  local owner=$1 hosts=$2
  [[ $(id -u) -eq 0 ]] || die "needs root (daemons as root, /etc/hosts, mounts)"
  local c
  for c in munged slurmctld slurmd sbatch scontrol setpriv; do
    command -v "$c" >/dev/null || die "no '$c'; install slurm-wlm and munge (bash launch/setup.sh --with-cluster)"
  done
  [[ -e $dir/slurm.conf ]] && die "$dir already holds a cluster; stop it first"
  mkdir -p "$dir"/{state,spool,log,run,munge}
  : >"$dir/pids"
  # A start that fails half-way undoes what it did.
  trap 'status=$?; ((status == 0)) || stop; exit $status' EXIT

  # slurmd reads /sys/fs/cgroup at start-up even with proctrack/linuxproc. (Where
  # /proc/self/cgroup lists v1 controllers, slurmd refuses a cgroup2 mount: "Hybrid mode is not
  # supported"; mount the machine's own cgroup tree there instead.)
  if ! mountpoint -q /sys/fs/cgroup; then
    mount -t cgroup2 none /sys/fs/cgroup || die "cannot mount cgroup2 at /sys/fs/cgroup"
    echo "mounted" >"$dir/cgroup_mount"
    say "mounted cgroup2 at /sys/fs/cgroup"
  fi

  # munge: a key and a socket of this cluster's own, so a system munged is neither needed nor
  # disturbed. munged runs as the munge user and checks that its files are that user's alone;
  # the hosts share the file system, so one munged serves them all.
  chown munge: "$dir/munge"
  chmod 755 "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chown munge: "$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  local socket=$dir/munge/munge.socket
  daemon munged setpriv --reuid=munge --regid=munge --init-groups \
    munged --foreground --socket="$socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed"
  for _ in $(seq 50); do [[ -S $socket ]] && break; sleep 0.1; done
  [[ -S $socket ]] || { cat "$dir/log/munged.out" "$dir/munge/munged.log" >&2 2>/dev/null; die "munged did not start"; }

  # This machine's CPUs and memory, for every node (the hosts share them).
  local spec ctld nodes="" names=() i
  spec=$(slurmd -C | head -n 1 | sed 's/^NodeName=[^ ]* //')
  if ((hosts)); then
    command -v ip >/dev/null || die "--hosts needs iproute2 (ip)"
    local id
    # netns_hosts.sh IDs are 1-8 lower-case letters or digits; this one follows from DIR.
    id=s$(printf '%s' "$dir" | cksum | cut -c1-6)
    echo "$id" >"$dir/netns_id"
    bash "$netns" up "$id" "$hosts" || die "cannot make $hosts network-namespace hosts"
    for i in $(seq 1 "$hosts"); do
      local h=$id-h$i addr
      addr=$(awk -v h="$h" '$2 == h { print $1 }' "/etc/netns/$h/hosts")
      names+=("$h")
      nodes+="NodeName=$h NodeAddr=$addr $spec State=UNKNOWN"$'\n'
      ((i == 1)) && ctld="$h($addr)"
      mkdir -p "$dir/spool/$h" "$dir/tmp/$h"
    done
    # `ip netns exec` mounts a fresh /sys for the host, without cgroups: the hosts bind this
    # copy of the machine's tree there.
    mkdir -p "$dir/cgroup" "$dir/nodetmp"
    mount --rbind /sys/fs/cgroup "$dir/cgroup"
    echo "mounted" >"$dir/cgroup_bind"
  else
    # slurmctld looks its own host name up before it starts.
    local host
    host=$(hostname)
    if ! getent hosts "$host" >/dev/null; then
      echo "127.0.0.1 $host # vae_dist slurm_cluster $dir" >>/etc/hosts
      echo "added" >"$dir/hosts_line"
      say "added '$host' to /etc/hosts"
    fi
    names=("$(hostname -s)")
    ctld=$host
    nodes="NodeName=${names[0]} $spec State=UNKNOWN"$'\n'
    mkdir -p "$dir/spool/${names[0]}"
  fi

  local ctld_port slurmd_port
  ctld_port=$(free_port 6817)
  slurmd_port=$(free_port $((ctld_port + 1)))
  cat >"$conf" <<EOF
# Test cluster made by tests/slurm/slurm_cluster.sh; everything under $dir.
ClusterName=vdtest
SlurmctldHost=$ctld
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
EOF
  if ((hosts)); then
    cat >>"$conf" <<EOF
# PMIx keeps a directory per job step under TmpFS, named by the step alone; the hosts share one
# file system, so each host sees its own directory here (a bind mount in its mount namespace).
TmpFS=$dir/nodetmp
EOF
  fi
  printf '%sPartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n' "$nodes" >>"$conf"

  export SLURM_CONF=$conf
  if ((hosts)); then
    daemon slurmctld bash "$netns" exec "${names[0]}" slurmctld -D -i -f "$conf"
    local h
    for h in "${names[@]}"; do
      # -N: this slurmd is node $h (each host has its own address, so no multiple-slurmd build
      # is needed).
      daemon "slurmd-$h" bash "$netns" exec "$h" sh -c \
        'mount --rbind "$1/cgroup" /sys/fs/cgroup && mount --bind "$1/tmp/$2" "$1/nodetmp" &&
         shift 2 && exec "$@"' sh "$dir" "$h" slurmd -D -N "$h" -f "$conf"
    done
  else
    daemon slurmctld slurmctld -D -i -f "$conf"
    daemon slurmd slurmd -D -f "$conf"
  fi

  if [[ -n $owner ]]; then
    # Its own session, so nothing that ends the owner's process group ends the watchdog.
    setsid bash "${BASH_SOURCE[0]}" watch "$dir" "$owner" </dev/null >"$dir/log/watchdog.out" 2>&1 &
    echo "$! watchdog" >>"$dir/pids"
  fi

  # Up when every node is idle: slurmctld answers and each slurmd has registered.
  local states=""
  for _ in $(seq 150); do
    states=$( (run sinfo -h -N -o %T) 2>/dev/null | sort | uniq -c | awk '{ print $1, $2 }' || true)
    [[ $states == "${#names[@]} idle" ]] && break
    sleep 0.2
  done
  if [[ $states != "${#names[@]} idle" ]]; then
    tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd-"*.log "$dir"/log/*.out >&2 2>/dev/null || true
    die "the nodes did not become idle (states: '${states:-none}'); logs above"
  fi
  say "up: $( (run sinfo -h -N -o '%N %T %c CPUs') | tr '\n' ';')"
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
  if [[ -n $watchdog && ${VD_SLURM_WATCHDOG:-} != 1 ]]; then
    end_pids "$watchdog"
  fi
  # Jobs first, while slurmctld and slurmd can still end them cleanly.
  if ((${#daemons[@]})) && kill -0 "${daemons[@]}" 2>/dev/null; then
    (run scancel --full --quiet --signal=KILL --user=root) 2>/dev/null || true
    for _ in $(seq 25); do
      [[ -z $( (run squeue -h -t running,completing) 2>/dev/null) ]] && break
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
  if [[ -f $dir/netns_id ]]; then
    # Ends what still runs in the hosts (by pid) and removes them.
    bash "$netns" down "$(cat "$dir/netns_id")" || true
    rm -f "$dir/netns_id"
  fi
  if [[ -f $dir/cgroup_bind ]]; then
    umount -l "$dir/cgroup" || true
    rm -f "$dir/cgroup_bind"
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
[[ -n ${2:-} ]] || die "usage: slurm_cluster.sh start|run|stop DIR ... (see the top of this file)"
dir=$(realpath -m "$2")
conf=$dir/slurm.conf
shift 2
case $cmd in
  start)
    owner="" hosts=0
    while (($#)); do
      case $1 in
        --owner) owner=${2:?--owner needs a pid}; shift 2 ;;
        --hosts) hosts=${2:?--hosts needs a count}; shift 2 ;;
        *) die "unknown option '$1'" ;;
      esac
    done
    [[ $hosts =~ ^[0-9]+$ ]] || die "--hosts needs a count, got '$hosts'"
    start "$owner" "$hosts"
    ;;
  run) (($#)) || die "run needs a command"; run "$@" ;;
  stop) stop ;;
  watch) watch "$1" ;;
  *) die "unknown command '$cmd'; use start, run or stop" ;;
esac
