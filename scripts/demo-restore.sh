#!/usr/bin/env bash
# Demo of the main job on a fresh machine: a real etcd 3.5.1 with Kubernetes-like data,
# `etcdctl snapshot save`, then `rescue-init snapshot restore` as ONE member with a new name
# and peer URL, a real etcd started on the result, and its member list and key count shown.
# Installs what it needs (install-deps.sh) and builds rescue-init (release) unless
# RESCUE_INIT_BIN names a binary. Every process it starts is stopped on exit; the work dir is
# removed unless KEEP=1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

ROOT_DIR=$ROOT
# shellcheck source=scripts/demo-lib.sh
source scripts/demo-lib.sh

# start_etcd NAME DATA_DIR PEER_PORT CLIENT_PORT [extra flags...]: starts etcd in the
# background (log in the work dir) and waits until it is healthy.
start_etcd() {
    local name=$1 dir=$2 peer=$3 client=$4
    shift 4
    "$ETCD" --name "$name" --data-dir "$dir" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --listen-client-urls "http://127.0.0.1:$client" \
        --advertise-client-urls "http://127.0.0.1:$client" \
        --unsafe-no-fsync "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    local i
    for i in $(seq 1 100); do
        if "$ETCDCTL" --endpoints "http://127.0.0.1:$client" endpoint health >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "${PIDS[-1]}" 2>/dev/null; then
            break
        fi
        sleep 0.2
        [ "$i" -lt 100 ] || break
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

key_count() {
    "$ETCDCTL" --endpoints "$1" get "" --from-key --keys-only -w json | grep -o '"count":[0-9]*' | cut -d: -f2
}

echo "==> 1. an etcd 3.5.1 'old master' with Kubernetes-like data"
OLD_PEER=$(free_port)
OLD_CLIENT=$(free_port)
start_etcd old-master "$WORK/old-master.etcd" "$OLD_PEER" "$OLD_CLIENT" \
    --initial-cluster "old-master=http://127.0.0.1:$OLD_PEER" --initial-cluster-token demo-old
OLD="http://127.0.0.1:$OLD_CLIENT"
ctl_old() { "$ETCDCTL" --endpoints "$OLD" "$@" >/dev/null; }
ctl_old put /registry/namespaces/default '{"kind":"Namespace","metadata":{"name":"default"}}'
ctl_old put /registry/namespaces/kube-system '{"kind":"Namespace","metadata":{"name":"kube-system"}}'
for i in $(seq 1 30); do
    ctl_old put "/registry/pods/default/web-$i" "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-$i\"}}"
done
ctl_old put /registry/pods/default/web-1 '{"kind":"Pod","metadata":{"name":"web-1","generation":2}}'
ctl_old del /registry/pods/default/web-30
LEASE=$("$ETCDCTL" --endpoints "$OLD" lease grant 3600 | awk '{print $2}')
ctl_old put /registry/leases/kube-system/kube-scheduler holder=old-master --lease="$LEASE"
BEFORE=$(key_count "$OLD")
"$ETCDCTL" --endpoints "$OLD" member list -w table
echo "keys: $BEFORE"

echo "==> 2. etcdctl snapshot save"
"$ETCDCTL" --endpoints "$OLD" snapshot save "$WORK/backup.db" >/dev/null 2>&1
stop_last_etcd
echo "old master stopped; backup: $(stat -c %s "$WORK/backup.db") bytes"

echo "==> 3. rescue-init snapshot status"
"$BIN" snapshot status "$WORK/backup.db" -w table

NEW_PEER=$(free_port)
NEW_CLIENT=$(free_port)
NEW_PEER_URL="http://127.0.0.1:$NEW_PEER"
echo "==> 4. rescue-init snapshot restore as one member 'new-master' at $NEW_PEER_URL"
"$BIN" snapshot restore "$WORK/backup.db" --data-dir "$WORK/new-master.etcd" \
    --name new-master --initial-cluster "new-master=$NEW_PEER_URL" \
    --initial-advertise-peer-urls "$NEW_PEER_URL" --initial-cluster-token demo-restored

echo "==> 5. etcd 3.5.1 on the restored data dir"
start_etcd new-master "$WORK/new-master.etcd" "$NEW_PEER" "$NEW_CLIENT" \
    --initial-cluster "new-master=$NEW_PEER_URL"
NEW="http://127.0.0.1:$NEW_CLIENT"
"$ETCDCTL" --endpoints "$NEW" member list -w table
"$ETCDCTL" --endpoints "$NEW" endpoint status -w table
AFTER=$(key_count "$NEW")
echo "keys: $AFTER (before the restore: $BEFORE)"
"$ETCDCTL" --endpoints "$NEW" get /registry/pods/default/web-1 --print-value-only
"$ETCDCTL" --endpoints "$NEW" put /registry/demo/after-restore ok >/dev/null
if [ "$AFTER" != "$BEFORE" ]; then
    echo "error: key count changed over the restore" >&2
    exit 1
fi
echo "==> demo ok: one member 'new-master', $AFTER keys, accepts writes"
