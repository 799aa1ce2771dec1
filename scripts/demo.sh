#!/usr/bin/env bash
# Demo of the main job: recover a broken Kubernetes master with no configuration at all.
#
# 1. A real etcd 3.5.1 gets Kubernetes-like data (keys, overwrites, deletes, a lease) and an
#    `etcdctl snapshot save` backup is taken.
# 2. A simulated broken kubeadm master is built as a host root in a temp dir: /etc/kubernetes
#    (static pod manifests naming a 3-member cluster, placeholder pki), a corrupt
#    /var/lib/etcd, and the backup in /var/backups/etcd.
# 3. `rescue-init recover --root ROOT` runs with no flags and no plan; its output is shown.
# 4. etcd is started with exactly the flags of the rewritten etcd manifest (data dir mapped
#    into the root), and `etcdctl member list` and the key count are shown.
#
# Installs what it needs (scripts/install-deps.sh) and builds rescue-init (release) unless
# RESCUE_INIT_BIN names a binary. Every process it starts is stopped on exit; the work dir is
# removed unless KEEP=1.
set -euo pipefail
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT_DIR"

# shellcheck source=scripts/demo-lib.sh
source scripts/demo-lib.sh

# wait_healthy URL NAME: waits until the etcd started last answers on URL.
wait_healthy() {
    local url=$1 name=$2 i
    for i in $(seq 1 150); do
        if "$ETCDCTL" --endpoints "$url" endpoint health >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "${PIDS[-1]}" 2>/dev/null || break
        sleep 0.2
        [ "$i" -lt 150 ] || break
    done
    echo "error: etcd $name did not become healthy; log:" >&2
    tail -n 20 "$WORK/$name.log" >&2
    exit 1
}

stop_last_etcd() {
    local pid=${PIDS[-1]}
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    unset 'PIDS[-1]'
}

# --- 1. the old cluster's data and its backup ------------------------------------------------
echo "==> 1. a real etcd 3.5.1 with Kubernetes-like data, and a snapshot backup"
SRC_PEER=$(free_port)
SRC_CLIENT=$(free_port)
SRC=http://127.0.0.1:$SRC_CLIENT
"$ETCD" --name old-master --data-dir "$WORK/source.etcd" \
    --listen-peer-urls "http://127.0.0.1:$SRC_PEER" \
    --initial-advertise-peer-urls "http://127.0.0.1:$SRC_PEER" \
    --initial-cluster "old-master=http://127.0.0.1:$SRC_PEER" \
    --listen-client-urls "$SRC" --advertise-client-urls "$SRC" \
    --unsafe-no-fsync >"$WORK/source.log" 2>&1 &
PIDS+=("$!")
wait_healthy "$SRC" source
ctl() { "$ETCDCTL" --endpoints "$SRC" "$@" >/dev/null; }
for ns in default kube-system; do
    for i in $(seq 1 10); do
        ctl put "/registry/pods/$ns/pod-$i" "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"pod-$i\",\"namespace\":\"$ns\"}}"
    done
done
for i in $(seq 1 10); do
    ctl put "/registry/configmaps/default/cm-$i" "data-$i"
done
ctl put /registry/configmaps/default/cm-1 "data-1-v2"       # an overwrite
ctl del /registry/pods/default/pod-10                       # a delete
LEASE=$("$ETCDCTL" --endpoints "$SRC" lease grant 3600 | awk '{print $2}')
ctl put /registry/leases/kube-system/kube-scheduler "held" --lease "$LEASE"
SRC_KEYS=$("$ETCDCTL" --endpoints "$SRC" get "" --prefix --keys-only | grep -c .)
SRC_REV=$("$ETCDCTL" --endpoints "$SRC" endpoint status -w json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
mkdir -p "$WORK/root/var/backups/etcd"
SNAP=$WORK/root/var/backups/etcd/etcd-snapshot-20240102-030405.db
"$ETCDCTL" --endpoints "$SRC" snapshot save "$SNAP" >/dev/null 2>&1
echo "    source: $SRC_KEYS keys, revision $SRC_REV; backup $(basename "$SNAP")"
stop_last_etcd

# --- 2. the broken master --------------------------------------------------------------------
echo "==> 2. a simulated broken kubeadm master (etcd data corrupt, a snapshot in /var/backups)"
ROOT=$WORK/root
PEER=$(free_port)
CLIENT=$(free_port)
K=$ROOT/etc/kubernetes
mkdir -p "$K/manifests" "$K/pki/etcd" "$ROOT/var/lib/etcd/member/snap"
cat >"$K/manifests/etcd.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: http://127.0.0.1:$CLIENT
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=http://127.0.0.1:$CLIENT
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=http://127.0.0.1:$PEER
    - --initial-cluster=master-0=http://127.0.0.1:$PEER,master-1=https://10.0.0.11:2380,master-2=https://10.0.0.12:2380
    - --initial-cluster-state=existing
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=http://127.0.0.1:$CLIENT
    - --listen-metrics-urls=http://127.0.0.1:2381
    - --listen-peer-urls=http://127.0.0.1:$PEER
    - --name=master-0
    - --snapshot-count=10000
    image: registry.k8s.io/etcd:3.5.15-0
    name: etcd
  hostNetwork: true
EOF
cat >"$K/manifests/kube-apiserver.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=127.0.0.1
    - --etcd-servers=http://127.0.0.1:$CLIENT
    image: registry.k8s.io/kube-apiserver:v1.30.4
    name: kube-apiserver
  hostNetwork: true
EOF
for f in ca server peer; do
    printf -- '-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n' >"$K/pki/etcd/$f.crt"
    printf -- '-----BEGIN RSA PRIVATE KEY-----\nplaceholder\n-----END RSA PRIVATE KEY-----\n' >"$K/pki/etcd/$f.key"
    chmod 600 "$K/pki/etcd/$f.key"
done
echo "this bolt db was corrupted by the disk failure" >"$ROOT/var/lib/etcd/member/snap/db"
chmod 700 "$ROOT/var/lib/etcd/member"

# --- 3. recover, with no configuration -------------------------------------------------------
echo "==> 3. rescue-init recover --root ROOT   (no flags, no plan)"
"$BIN" recover --root "$ROOT"

# --- 4. etcd from the rewritten manifest -----------------------------------------------------
echo "==> 4. etcd started with the flags of the rewritten manifest"
flag() {
    sed -n "s/^ *- --$1=//p" "$K/manifests/etcd.yaml" | head -n 1
}
ARGS=(
    "--name=$(flag name)"
    "--data-dir=$ROOT$(flag data-dir)"
    "--initial-advertise-peer-urls=$(flag initial-advertise-peer-urls)"
    "--initial-cluster=$(flag initial-cluster)"
    "--initial-cluster-state=$(flag initial-cluster-state)"
    "--listen-peer-urls=$(flag listen-peer-urls)"
    "--listen-client-urls=$(flag listen-client-urls)"
    "--advertise-client-urls=$(flag advertise-client-urls)"
)
printf '    etcd'
printf ' %s' "${ARGS[@]}"
printf '\n'
"$ETCD" "${ARGS[@]}" >"$WORK/recovered.log" 2>&1 &
PIDS+=("$!")
URL=$(flag advertise-client-urls)
wait_healthy "$URL" recovered
echo "--- etcdctl member list"
"$ETCDCTL" --endpoints "$URL" member list -w table
KEYS=$("$ETCDCTL" --endpoints "$URL" get "" --prefix --keys-only | grep -c .)
REV=$("$ETCDCTL" --endpoints "$URL" endpoint status -w json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
echo "--- keys: $KEYS (source had $SRC_KEYS); revision $REV (source $SRC_REV, bumped by 1e9)"
echo "--- moved aside, not deleted:"
find "$ROOT/var/lib" -maxdepth 1 -name 'etcd.before-rescue-*' -printf '    %p\n'
[ "$KEYS" -eq "$SRC_KEYS" ] || { echo "error: key count differs" >&2; exit 1; }
[ "$REV" -ge $((SRC_REV + 1000000000)) ] || { echo "error: revision not bumped" >&2; exit 1; }
echo "==> demo OK"
