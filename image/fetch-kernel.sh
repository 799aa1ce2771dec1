#!/usr/bin/env bash
# Fetches Debian's current amd64 kernel package, unpacks it without installing it, runs depmod
# and extracts an uncompressed vmlinux for QEMU's fast PVH boot. The result is cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/rescue-init/kernel/<version>/ and described by manifest.txt.
# Prints the cache directory of the kernel on stdout (the last line), everything else on stderr.
set -euo pipefail                                   # stop on the first failure, unset variable or failed pipe stage

cache="${XDG_CACHE_HOME:-$HOME/.cache}/rescue-init/kernel"   # one cache per user, shared by builds and tests
mkdir -p "$cache"                                   # the cache may not exist on a fresh machine

log() { printf 'fetch-kernel: %s\n' "$*" >&2; }    # progress goes to stderr so stdout stays machine-readable

if ! command -v depmod >/dev/null; then             # depmod is in kmod, which a fresh machine lacks
  log "installing kmod for depmod"   # say why apt runs
  apt-get install -y -qq kmod >&2                   # needed to build modules.dep (the .deb ships none)
fi

if [[ -z "${RESCUE_KERNEL_PKG:-}" && "${RESCUE_APT_UPDATE:-1}" == 1 ]]; then
  apt-get update -qq >&2 || log "apt-get update failed; using the package lists as they are"   # the ABI name changes with security updates
fi
# The metapackage linux-image-amd64 depends on the current ABI package (linux-image-6.1.0-NN-amd64).
# awk reads to the end (no early exit), so apt-cache never dies of SIGPIPE under pipefail.
pkg="${RESCUE_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ && !n++ {print $2}')}"
[[ -n "$pkg" ]] || { log "cannot resolve linux-image-amd64's kernel package"; exit 1; }   # no package lists or no such metapackage
version="$(apt-cache policy "$pkg" | awk '/Candidate:/{print $2}')"   # the exact package version goes into the manifest
kver="${pkg#linux-image-}"                          # kernel release = module directory name, e.g. 6.1.0-56-amd64
dest="$cache/$kver"                                 # one directory per kernel release

if [[ -f "$dest/manifest.txt" ]] && grep -qx "package_version=$version" "$dest/manifest.txt"; then
  log "cached: $pkg $version in $dest"              # same release and version: nothing to do
  printf '%s\n' "$dest"   # the cache directory on stdout, for callers
  exit 0   # cache hit: done
fi

tmp="$(mktemp -d "$cache/.fetch.XXXXXX")"           # build in a temp dir next to the cache so the final mv is atomic
trap 'rm -rf "$tmp"' EXIT                           # never leave half-unpacked trees behind

log "downloading $pkg $version"
(cd "$tmp" && apt-get download "$pkg=$version" >&2) # download only; the host's kernel is never touched
deb="$(find "$tmp" -maxdepth 1 -name '*.deb' -print -quit)"   # apt-get download names the file itself
log "unpacking $(basename "$deb")"
dpkg -x "$deb" "$tmp/kroot"                         # plain extraction, no maintainer scripts run
depmod -b "$tmp/kroot" "$kver"                      # the .deb ships no modules.dep; postinst would run depmod

vmlinuz="$tmp/kroot/boot/vmlinuz-$kver"             # XZ-compressed bzImage with the EFI stub
# The bzImage payload is an XZ stream; unpacked it is an ELF vmlinux that QEMU boots through
# its PVH entry, about 4 s faster under TCG than decompressing the bzImage in the guest.
off="$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | awk -F: 'NR == 1 {print $1}')"   # byte offset of the XZ magic; C locale = bytes, awk reads all (no SIGPIPE)
[[ -n "$off" ]] || { log "no XZ payload found in $vmlinuz"; exit 1; }
# xz stops after the first stream, so the feeding tail would die of SIGPIPE; a process substitution
# keeps that expected SIGPIPE out of pipefail while xz's own status still counts.
xz -dc --single-stream < <(tail -c "+$((off + 1))" "$vmlinuz") > "$tmp/vmlinux"
[[ "$(head -c 4 "$tmp/vmlinux" | od -An -tx1 | tr -d ' ')" == 7f454c46 ]] || { log "vmlinux is not an ELF file"; exit 1; }

{
  echo "package=$pkg"                              # what was fetched
  echo "package_version=$version"                  # the exact Debian version (security updates change it)
  echo "kernel_release=$kver"                      # the module directory name
  echo "deb_sha256=$(sha256sum "$deb" | cut -d' ' -f1)"          # lets a build be traced to its input
  echo "vmlinuz_sha256=$(sha256sum "$vmlinuz" | cut -d' ' -f1)"  # the kernel that goes into the ISO and PXE dir
  echo "vmlinux_sha256=$(sha256sum "$tmp/vmlinux" | cut -d' ' -f1)"  # the PVH kernel used by tests
} > "$tmp/manifest.txt"
rm -f "$deb"                                        # 70 MB we no longer need; the unpacked tree is what we use

rm -rf "$dest"                                      # replace an older unpack of the same release
mkdir -p "$dest"
mv "$tmp/kroot" "$tmp/vmlinux" "$tmp/manifest.txt" "$dest/"   # same file system: atomic renames
log "kernel $kver ready in $dest"
printf '%s\n' "$dest"   # the cache directory on stdout, for callers
