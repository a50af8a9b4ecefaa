#!/usr/bin/env bash
# The README's Quickstart on a machine where nothing is installed: makes a throwaway Debian
# bookworm root (debootstrap --variant=minbase, plus git, ca-certificates and sudo), clones this
# repository's committed HEAD into it, and runs the Quickstart's commands, read from README.md,
# verbatim as root; then, on that build, `launch/setup.sh --with-cluster` and the cluster tests
# (ctest -L 'slurm|multi_host': a real Slurm on localhost, network-namespace hosts), which must
# run, not skip; then `launch/setup.sh --with-charts --with-python` and the Python tests (ctest -L
# python), which must run too; then `launch/setup.sh --with-fuzz` and a fixed set of inputs to
# each libFuzzer target (launch/fuzz.sh --ci), which must find nothing. Prints every phase's
# time. Removes all it mounted and made on every exit: the mounts (and the root itself, in RAM
# when there is room) live in a private mount namespace.
#   sudo bash launch/bare_root_check.sh [--keep]   (--keep: root on disk, left unmounted for a look)
# Needs root and a Debian mirror (the one the host's apt uses, else deb.debian.org); installs
# debootstrap on the host if it is missing. Nothing is cached: each run starts from nothing.
set -euo pipefail

release=bookworm
self=$(realpath "${BASH_SOURCE[0]}")
repo=$(cd "$(dirname "$self")/.." && pwd)

say() { echo "bare-root: $*"; }
die() {
  echo "bare-root: $*" >&2
  exit 1
}
# Appends "<time> <phase>" to the phase log: a phase lasts until the next one starts.
mark() { echo "$EPOCHREALTIME $*" >>"$phases"; }

# "URI SUITE" for every enabled deb source of $release (and -updates, -security) on the host,
# from one-line (.list) and deb822 (.sources) files.
host_sources() {
  {
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                         print $i, $(i + 1) }'
    for f in /etc/apt/sources.list.d/*.sources; do
      [[ -f $f ]] || continue
      awk 'function flush(  n, m, i, j, u, s) {
             if (types ~ /(^| )deb( |$)/ && enabled != "no") {
               n = split(uris, u, " "); m = split(suites, s, " ")
               for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print u[i], s[j]
             }
             types = uris = suites = enabled = ""
           }
           /^[ \t]*#/ { next }
           /^[ \t]*$/ { flush(); next }
           { key = tolower($1); value = $0; sub(/^[^:]*:[ \t]*/, "", value) }
           key == "types:" { types = value } key == "uris:" { uris = value }
           key == "suites:" { suites = value } key == "enabled:" { enabled = tolower(value) }
           END { flush() }' "$f"
    done
  } | awk -v r="$release" '$2 ~ ("^" r "(-updates|-security)?$") { sub(/\/$/, "", $1); print }' |
    awk '!seen[$0]++'
}

# The commands in README.md's Quickstart ```sh block, one per line, as written.
quickstart_commands() {
  awk '/^## Quickstart/ { q = 1; next } q && /^## / { exit }
       q && /^```sh$/ { b = 1; next } b && /^```/ { exit } b && NF' "$1"
}

# ---- inside a private mount namespace: everything mounted here vanishes with it -------------
# Unmounts, innermost first and lazily (a busy mount is detached now, freed when unused).
unmount_all() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  mounted=()
}

inside() {
  local work=$1 keep=$2
  local root=$work/root
  phases=$work/phases
  mounted=()  # global: the EXIT trap runs after this function has returned
  trap unmount_all EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  local sources mirror
  sources=$(host_sources)
  mirror=$(awk -v r="$release" '$2 == r { print $1; exit }' <<<"$sources")
  if [[ -z $mirror ]]; then
    mirror=http://deb.debian.org/debian
    sources="$mirror $release
$mirror $release-updates
http://deb.debian.org/debian-security $release-security"
  fi

  # The root (4.3 GB at its largest, with torch, Node.js and clang) in RAM when there is
  # room: faster on a small machine, and it vanishes with this namespace, leaving nothing to
  # delete. tmpfs takes RAM only for what is written.
  if ((keep == 0 && $(awk '/^MemAvailable:/ { print int($2 / 1048576) }' /proc/meminfo) >= 16)); then
    mount -t tmpfs -o size=10g,mode=755 vae_dist_bare_root "$root" && mounted+=("$root")
  fi

  mark debootstrap
  say "debootstrap --variant=minbase $release from $mirror (log: $work/debootstrap.log)"
  if ! debootstrap --variant=minbase --include=git,ca-certificates,sudo "$release" "$root" \
    "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log"
    die "debootstrap failed"
  fi

  mark "prepare (apt sources, clone, mounts)"
  # apt in the root uses the same archive as the host; only main: all the packages are there.
  awk '{ print "deb " $1 " " $2 " main" }' <<<"$sources" >"$root/etc/apt/sources.list"
  say "apt sources in the root: $(awk '{ printf "%s%s", sep, $2; sep = ", " }' <<<"$sources")"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  # The root is thrown away: dpkg need not fsync every file it unpacks.
  echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/throwaway-root-unsafe-io"
  local head tree=$root/root/vae_dist
  head=$(git -C "$repo" rev-parse HEAD)
  git clone -q --no-hardlinks "$repo" "$tree"
  # The checkout's HEAD itself, also when it is detached or on a branch clone did not pick.
  git -C "$tree" fetch -q "$repo" HEAD
  git -C "$tree" checkout -q --detach FETCH_HEAD
  [[ $(git -C "$tree" rev-parse HEAD) == "$head" ]] || die "the clone is not at $head"
  say "testing commit $(git -C "$tree" log -1 --format='%h %s')"

  # What MPI needs: /proc, /sys, /dev with /dev/pts, and a /dev/shm of its own.
  local m
  mount -t proc proc "$root/proc" && mounted+=("$root/proc")
  mount -t sysfs sysfs "$root/sys" && mounted+=("$root/sys")
  mount --bind /dev "$root/dev" && mounted+=("$root/dev")
  mount --bind /dev/pts "$root/dev/pts" && mounted+=("$root/dev/pts")
  mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm" && mounted+=("$root/dev/shm")
  for m in proc sys dev dev/pts dev/shm; do
    mountpoint -q "$root/$m" || die "$root/$m is not mounted"
  done

  local commands=() cmd status=0
  mapfile -t commands < <(quickstart_commands "$tree/README.md")
  ((${#commands[@]})) || die "README.md has no \`\`\`sh block under '## Quickstart'"
  for cmd in "${commands[@]}"; do
    mark "\$ $cmd"
    say "\$ $cmd"
    in_root "$root" "$cmd" | stream || status=${PIPESTATUS[0]}
    if ((status != 0)); then
      say "FAILED (exit $status): $cmd"
      return "$status"
    fi
  done
  say "all ${#commands[@]} Quickstart commands passed"
  cluster_phase "$root" || return
  reference_phase "$root" || return
  fuzz_phase "$root" || status=$?
  # What the root grew to, for the tmpfs size above.
  say "root size: $(du -sxh "$root" 2>/dev/null | cut -f1)"
  return "$status"
}

# Runs a command line as root in the checkout inside the root: a clean login-like environment
# (no host variables leak in), no stdin, as in CI; stdout and stderr together.
in_root() {
  chroot "$1" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" CI="${CI:-}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /root/vae_dist && $2" </dev/null 2>&1
}

# After the Quickstart, on its build: the cluster packages, then the tests that start a real
# Slurm (tests/slurm) and network-namespace hosts (multi_host). A skipped test fails the phase:
# here everything they need is present.
cluster_phase() {
  local root=$1 status=0 log=$work/cluster_ctest.log
  local setup="bash launch/setup.sh --with-cluster"
  local tests="ctest --test-dir build -L 'slurm|multi_host' --output-on-failure --no-tests=error"
  mark "cluster: \$ $setup"
  say "\$ $setup"
  in_root "$root" "$setup" || status=$?
  ((status == 0)) || { say "FAILED (exit $status): $setup"; return "$status"; }
  # What a booted machine has and a chroot lacks: the cgroup file system (slurmd reads it even
  # with proctrack/linuxproc), munge's run directory, and this host's name in /etc/hosts
  # (slurmctld looks itself up before it starts). The cgroups are the host's own tree: a
  # cgroup2 mount where /proc/self/cgroup lists v1 controllers (as under gVisor) makes slurmd
  # stop with "Hybrid mode is not supported".
  if ! mountpoint -q "$root/sys/fs/cgroup"; then
    if mountpoint -q /sys/fs/cgroup; then
      mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup" && mounted+=("$root/sys/fs/cgroup")
    else
      mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup" && mounted+=("$root/sys/fs/cgroup")
    fi
  fi
  mountpoint -q "$root/sys/fs/cgroup" || die "cannot mount cgroups at $root/sys/fs/cgroup"
  in_root "$root" "install -d -o munge -g munge -m 755 /run/munge" || die "cannot make /run/munge"
  local host
  host=$(hostname)
  grep -qw -- "$host" "$root/etc/hosts" 2>/dev/null || echo "127.0.1.1 $host" >>"$root/etc/hosts"
  mark "cluster: \$ $tests"
  say "\$ $tests"
  in_root "$root" "$tests" | tee "$log" || status=${PIPESTATUS[0]}
  ((status == 0)) || { say "FAILED (exit $status): $tests"; return "$status"; }
  if grep -q '(Skipped)' "$log"; then
    say "FAILED: cluster tests were skipped, though the root has all they need"
    return 1
  fi
  say "cluster tests passed"
}

# The Python references and the Python package's tests (label python: numpy, scipy,
# scikit-learn, scikit-image, h5py, matplotlib, PIL; torch, onnx and npm's onnxruntime-node), which the
# Quickstart's ctest reports as skipped in a bare root: their packages, then the tests, which
# must run here. A skipped test fails the phase.
reference_phase() {
  local root=$1 status=0 log=$work/reference_ctest.log
  # npm fetches onnxruntime-node over HTTPS: the root trusts the certificates the host trusts,
  # as a booted machine would (a host behind a TLS-inspecting proxy lists its CA there).
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/host-ca-certificates.crt"
  local setup="NODE_EXTRA_CA_CERTS=/etc/ssl/host-ca-certificates.crt bash launch/setup.sh --with-charts --with-python"
  local tests="ctest --test-dir build -L python --output-on-failure --no-tests=error"
  mark "reference: \$ $setup"
  say "\$ $setup"
  in_root "$root" "$setup" || status=$?
  ((status == 0)) || { say "FAILED (exit $status): $setup"; return "$status"; }
  mark "reference: \$ $tests"
  say "\$ $tests"
  in_root "$root" "$tests" | tee "$log" || status=${PIPESTATUS[0]}
  ((status == 0)) || { say "FAILED (exit $status): $tests"; return "$status"; }
  if grep -q '(Skipped)' "$log"; then
    say "FAILED: Python reference tests were skipped, though the root has their packages"
    return 1
  fi
  say "Python reference tests passed"
}

# Last: clang and the sanitizer runtime, then every libFuzzer target on a fixed sequence of
# inputs grown from its seeds, at most 60 s each (launch/fuzz.sh --ci: the same inputs on every
# machine, so a finding is reproducible rather than luck). Any finding fails the phase.
fuzz_phase() {
  local root=$1 status=0
  local setup="bash launch/setup.sh --with-fuzz" fuzz="bash launch/fuzz.sh 60 --ci"
  mark "fuzz: \$ $setup"
  say "\$ $setup"
  in_root "$root" "$setup" || status=$?
  ((status == 0)) || { say "FAILED (exit $status): $setup"; return "$status"; }
  mark "fuzz: \$ $fuzz"
  say "\$ $fuzz"
  in_root "$root" "$fuzz" || status=$?
  ((status == 0)) || { say "FAILED (exit $status): $fuzz"; return "$status"; }
  say "fuzzing found nothing"
}

# Copies the commands' output through unchanged, marking the phases setup.sh announces.
stream() {
  local line
  while IFS= read -r line || [[ -n $line ]]; do
    printf '%s\n' "$line"
    case $line in
      "setup: installing "* | "setup: all Debian packages present"*) mark "  packages (apt)" ;;
      "setup: building"*) mark "  build" ;;
      "setup: converting"*) mark "  data conversion" ;;
      "setup: done"*) mark "  training" ;;
    esac
  done
}

# ---- on the host -------------------------------------------------------------------------------
# Process IDs whose root directory is $1: what the check started inside the root.
processes_in() {
  local p
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/root" 2>/dev/null) == "$1" ]] && echo "${p#/proc/}"
  done
  return 0
}

cleanup() {
  local status=$? m pids=() log
  set +e
  trap '' INT TERM
  mark cleanup
  # Everything the check started: its own session (debootstrap, chroot, the build, the tests),
  # and anything inside the root that left that session; each by its ID, TERM, then KILL.
  mapfile -t pids < <(processes_in "$work/root")
  if [[ -n $child ]] && kill -0 -- "-$child" 2>/dev/null || ((${#pids[@]})); then
    local who=()
    [[ -n $child ]] && who+=(-s "$child")
    ((${#pids[@]})) && who+=(-p "$(IFS=,; echo "${pids[*]}")")
    say "ending what still runs: $(ps -o pid=,args= "${who[@]}" 2>/dev/null | cut -c1-100 | tr '\n' ';')"
    [[ -n $child ]] && kill -TERM -- "-$child" 2>/dev/null
    ((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      mapfile -t pids < <(processes_in "$work/root")
      ((${#pids[@]} == 0)) && { [[ -z $child ]] || ! kill -0 -- "-$child" 2>/dev/null; } && break
      sleep 0.5
    done
    [[ -n $child ]] && kill -KILL -- "-$child" 2>/dev/null
    ((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null
  fi
  wait 2>/dev/null
  # The mounts lived in the check's private mount namespace, so the host should see none; if
  # one shows up anyway, unmount it lazily, innermost first.
  for m in sys/fs/cgroup dev/shm dev/pts dev sys proc; do
    mountpoint -q "$work/root/$m" 2>/dev/null && umount -l "$work/root/$m"
  done
  log=$(cat "$phases" 2>/dev/null)
  if findmnt -rn -o TARGET | grep -qF "$work/"; then
    echo "bare-root: something is still mounted under $work; NOT deleting it:" >&2
    findmnt -rn -o TARGET | grep -F "$work/" >&2
    status=1
  elif ((keep)); then
    say "kept (nothing mounted): $work/root"
  else
    # --one-file-system: never crosses into a mount, should the check above ever miss one.
    rm -rf --one-file-system "$work"
  fi
  report "$log
$EPOCHREALTIME end"
  if ((status == 0)); then say "passed"; else say "FAILED (exit $status)"; fi
  exit "$status"
}

# Each phase's wall time, from the phase log ("<start time> <phase>" lines).
report() {
  say "phase times"
  awk '{ t[NR] = $1; name[NR] = substr($0, index($0, " ") + 1) }
       END { for (i = 1; i < NR; i++) printf "  %-60s %7.1f s\n", substr(name[i], 1, 60), t[i + 1] - t[i]
             printf "  %-60s %7.1f s\n", "total", t[NR] - t[1] }' <<<"$1"
}

main() {
  keep=0
  case ${1:-} in
    --keep) keep=1 ;;
    "") ;;
    -h | --help)
      sed -n '2,13p' "$self" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  [[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, mount, chroot): sudo bash launch/bare_root_check.sh"
  command -v git >/dev/null || die "needs git on the host"
  command -v unshare >/dev/null || die "needs unshare (util-linux) on the host"
  if ! command -v debootstrap >/dev/null || [[ ! -f /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
    say "installing debootstrap and debian-archive-keyring on the host"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      debootstrap debian-archive-keyring </dev/null >/dev/null
  fi
  if [[ -n $(git -C "$repo" status --porcelain --untracked-files=no) ]]; then
    say "note: uncommitted changes in $repo are not tested; the check clones HEAD"
  fi

  work=$(mktemp -d "${TMPDIR:-/var/tmp}/vae_dist_bare_root.XXXXXX")
  mkdir "$work/root"
  phases=$work/phases
  child=""
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # In the background so that a signal to this script is handled at once, not after the child;
  # in a session of its own so that cleanup can end all it started; with SIGINT at its default
  # (a background job would inherit it ignored, and so would vae_dist in the tests).
  setsid env --default-signal=INT unshare --mount --propagation private -- \
    bash "$self" --inside "$work" "$keep" &
  child=$!
  local status=0
  wait "$child" || status=$?
  exit "$status"
}

if [[ ${1:-} == --inside ]]; then
  inside "$2" "$3"
else
  main "$@"
fi
