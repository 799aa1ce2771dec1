#!/usr/bin/env bash
# The full demo, as root on a fresh machine: build the static rescue-init and the image, make a
# broken master's disk (a kubeadm-style /etc/kubernetes whose etcd manifest names three
# members, a stale /var/lib/etcd, and an `etcdctl snapshot save` backup from a real etcd 3.5.1
# in /var/backups), boot it unattended in QEMU (TCG, direct PVH kernel) with the serial console
# shown, then read the disk back, start etcd with the rewritten manifest's flags and show
# `etcdctl member list` and the key count.
# Every process it starts is stopped on exit; the work dir is removed unless KEEP=1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

scripts/install-deps.sh
scripts/install-vm-deps.sh
TOOLS=${RESCUE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rescue-init/tools}
ETCD=$TOOLS/etcd-3.5/etcd
ETCDCTL=$TOOLS/etcd-3.5/etcdctl
TARGET=x86_64-unknown-linux-gnu

if [ -n "${RESCUE_INIT_BIN:-}" ]; then
    BIN=$RESCUE_INIT_BIN
else
    echo "==> building the static rescue-init"
    RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --release --locked --target "$TARGET" -p rescue-init
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release/rescue-init
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rescue-demo-vm.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then
        echo "work dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
ctl() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$1" "${@:2}"; }
wait_healthy() {
    local i
    for i in $(seq 1 300); do
        ctl "$1" endpoint health >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "error: etcd at $1 is not healthy; log:" >&2
    cat "$2" >&2
    exit 1
}

echo "==> the image"
K=$(image/fetch-kernel.sh | tail -n1)
INITRD=$(image/build-initramfs.sh --kernel-dir "$K" --init "$BIN" --out "$WORK/initrd.gz" | tail -n1)

echo "==> a running etcd 3.5.1 with Kubernetes-like keys"
P=$(free_port); C=$(free_port)
"$ETCD" --name old-master --data-dir "$WORK/etcd-old" \
    --listen-peer-urls "http://127.0.0.1:$P" --initial-advertise-peer-urls "http://127.0.0.1:$P" \
    --listen-client-urls "http://127.0.0.1:$C" --advertise-client-urls "http://127.0.0.1:$C" \
    --initial-cluster "old-master=http://127.0.0.1:$P" >"$WORK/etcd-old.log" 2>&1 &
PIDS+=($!)
EP=http://127.0.0.1:$C
wait_healthy "$EP" "$WORK/etcd-old.log"
for i in $(seq -w 1 20); do ctl "$EP" put "/registry/old/k$i" "old $i" >/dev/null; done
echo "==> stale copy of the data dir (stopping etcd for a consistent copy)"
kill "${PIDS[0]}"; wait "${PIDS[0]}" || true; PIDS=()
cp -a "$WORK/etcd-old" "$WORK/stale"
"$ETCD" --name old-master --data-dir "$WORK/etcd-old" \
    --listen-peer-urls "http://127.0.0.1:$P" --initial-advertise-peer-urls "http://127.0.0.1:$P" \
    --listen-client-urls "http://127.0.0.1:$C" --advertise-client-urls "http://127.0.0.1:$C" \
    >>"$WORK/etcd-old.log" 2>&1 &
PIDS+=($!)
wait_healthy "$EP" "$WORK/etcd-old.log"
for i in $(seq -w 1 80); do
    ctl "$EP" put "/registry/pods/default/pod-$i" "{\"kind\":\"Pod\",\"n\":$i}" >/dev/null
done
ctl "$EP" snapshot save "$WORK/backup.db" >/dev/null
echo "backup: $(ctl "$EP" get "" --from-key --keys-only | grep -c .) keys, revision $(ctl "$EP" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')"
kill "${PIDS[0]}"; wait "${PIDS[0]}" || true; PIDS=()

echo "==> the broken master's disk"
NC=$(free_port); NP=$(free_port); NM=$(free_port)
SEED=$WORK/seed
mkdir -p "$SEED/etc/kubernetes/manifests" "$SEED/var/lib" "$SEED/var/backups"
cat >"$SEED/etc/kubernetes/manifests/etcd.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=http://127.0.0.1:$NC
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=http://127.0.0.1:$NP
    - --initial-cluster=master-0=http://127.0.0.1:$NP,master-1=http://127.0.0.1:$(free_port),master-2=http://127.0.0.1:$(free_port)
    - --initial-cluster-state=existing
    - --listen-client-urls=http://127.0.0.1:$NC
    - --listen-metrics-urls=http://127.0.0.1:$NM
    - --listen-peer-urls=http://127.0.0.1:$NP
    - --name=master-0
    image: registry.k8s.io/etcd:3.5.15-0
    name: etcd
  hostNetwork: true
YAML
echo "LABEL=hostroot / ext4 errors=remount-ro 0 1" >"$SEED/etc/fstab"
cp -a "$WORK/stale" "$SEED/var/lib/etcd"
cp "$WORK/backup.db" "$SEED/var/backups/etcd-snapshot.db"
mkfs.ext4 -q -F -L hostroot -E root_owner=0:0 -d "$SEED" "$WORK/host.img" 384M

echo "==> booting it (QEMU TCG, direct PVH kernel); serial console:"
start=$(date +%s%N)
timeout --kill-after=5 150 qemu-system-x86_64 -accel tcg -m 512 -smp 1 -nographic -monitor none \
    -serial stdio -no-reboot -nic none \
    -kernel "$K/vmlinux" -initrd "$INITRD" \
    -append "console=ttyS0 panic=-1 printk.devkmsg=on rescue.after=poweroff" \
    -drive "file=$WORK/host.img,format=raw,if=virtio" </dev/null | tee "$WORK/serial.log"
echo "==> QEMU ran $(( ($(date +%s%N) - start) / 1000000 )) ms"
grep -q "RESCUE RESULT: OK" "$WORK/serial.log" || { echo "error: the recovery did not succeed" >&2; exit 1; }

echo "==> reading the disk back"
R=$WORK/readback
mkdir -p "$R/var/lib"
debugfs -R "rdump /etc $R" "$WORK/host.img" 2>/dev/null
debugfs -R "rdump /var/lib/etcd $R/var/lib" "$WORK/host.img" 2>/dev/null
debugfs -R "ls /var/lib" "$WORK/host.img" 2>/dev/null
echo "--- rewritten etcd command line:"
mapfile -t FLAGS < <(sed -n 's/^ *- \(--[a-z-]*=.*\)$/\1/p' "$R/etc/kubernetes/manifests/etcd.yaml")
printf '    %s\n' "${FLAGS[@]}"

echo "==> etcd started from the recovered disk with the manifest's flags"
ARGS=()
for f in "${FLAGS[@]}"; do
    case $f in
        --data-dir=*) ARGS+=("--data-dir=$R${f#--data-dir=}") ;;
        *) ARGS+=("$f") ;;
    esac
done
"$ETCD" "${ARGS[@]}" >"$WORK/etcd-new.log" 2>&1 &
PIDS+=($!)
NEP=http://127.0.0.1:$NC
wait_healthy "$NEP" "$WORK/etcd-new.log"
echo "--- etcdctl member list:"
ctl "$NEP" member list -w table
echo "--- keys: $(ctl "$NEP" get "" --from-key --keys-only | grep -c .)"
ctl "$NEP" endpoint status -w table
