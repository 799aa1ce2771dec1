# shellcheck shell=bash
# Shared by the demo scripts (sourced, not run): tools, the rescue-init binary, a work dir
# whose processes are stopped and which is removed on exit (unless KEEP=1), free ports.
# Expects ROOT_DIR (the repository) to be set by the caller.

scripts/install-deps.sh
TOOLS=${RESCUE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rescue-init/tools}
ETCD=$TOOLS/etcd-3.5/etcd
ETCDCTL=$TOOLS/etcd-3.5/etcdctl
export ETCD ETCDCTL

if [ -n "${RESCUE_INIT_BIN:-}" ]; then
    BIN=$RESCUE_INIT_BIN
else
    echo "==> building rescue-init (release)"
    cargo build --release --locked -p rescue-init
    BIN=${CARGO_TARGET_DIR:-$ROOT_DIR/target}/release/rescue-init
fi
[ -x "$BIN" ] || { echo "error: no rescue-init binary at $BIN" >&2; exit 1; }
export BIN

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rescue-demo.XXXXXX")
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
