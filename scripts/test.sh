#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs the dependencies (etcd 3.5.1
# and 3.4, see install-deps.sh), builds rescue-init, then `cargo test --workspace --locked`.
#
# The real-etcd tests skip when etcd is missing, except with RESCUE_REQUIRE_ETCD=1 (set here
# when CI=true). They test $RESCUE_INIT_BIN if set (CI: the static release build), else the
# debug build of rescue-init. Extra arguments go to cargo test (e.g. `-- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
if [ "${CI:-}" = true ]; then
    export RESCUE_REQUIRE_ETCD=1
fi
if [ -z "${RESCUE_INIT_BIN:-}" ]; then
    cargo build --locked -p rescue-init
fi
cargo test --workspace --locked "$@"
