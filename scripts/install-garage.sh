#!/usr/bin/env bash
# Install the Garage S3 server used by the S3 source tests, cached outside the repository.
# Prints the path of the binary. Reuses a cached build when its version matches.
set -euo pipefail

GARAGE_VERSION="${GARAGE_VERSION:-2.5.0}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/rescue-init/tools"
bin="$cache/garage"
stamp="$cache/garage.version"

if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$GARAGE_VERSION" ]]; then
    echo "$bin"
    exit 0
fi

mkdir -p "$cache"
build_root="$cache/garage-build"
# A dedicated target dir so the build never collides with the project's.
CARGO_TARGET_DIR="$build_root/target" cargo install garage --version "$GARAGE_VERSION" \
    --locked --root "$build_root" >&2
install -m 0755 "$build_root/bin/garage" "$bin"
echo "$GARAGE_VERSION" >"$stamp"
echo "$bin"
