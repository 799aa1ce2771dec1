#!/usr/bin/env bash
# Builds the rescue initramfs: the static rescue-init as /init, /sbin/modprobe -> /init, /etc/hosts,
# console and null device nodes, and only the kernel modules in modules.list with their dependencies.
# The cpio is byte-reproducible: same inputs and SOURCE_DATE_EPOCH, same bytes.
#
# usage: image/build-initramfs.sh [--init PATH] [--kernel-dir DIR] [--out FILE] [--list FILE]
#   --init        the static binary (default: build it with cargo, crt-static)
#   --kernel-dir  output of fetch-kernel.sh (default: run it)
#   --out         initramfs path (default: build/image/initrd.gz)
# Environment: SOURCE_DATE_EPOCH (default: the last commit's time), CARGO_TARGET_DIR.
set -euo pipefail                                   # stop on the first failure, unset variable or failed pipe stage

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"   # image/ directory, to find modules.list and siblings
repo="$(cd "$here/.." && pwd)"                      # workspace root, for cargo and git
init="" kdir="" out="$repo/build/image/initrd.gz" list="$here/modules.list"   # defaults, overridden by flags
while [[ $# -gt 0 ]]; do                            # flags come in pairs
  case "$1" in
    --init) init="$2"; shift 2 ;;                   # a prebuilt static binary
    --kernel-dir) kdir="$2"; shift 2 ;;             # a fetched kernel tree
    --out) out="$2"; shift 2 ;;                     # where the initramfs goes
    --list) list="$2"; shift 2 ;;                   # another module list (e.g. a smaller one for tests)
    *) echo "build-initramfs: unknown argument $1" >&2; exit 2 ;;   # refuse typos rather than ignore them
  esac
done
log() { printf 'build-initramfs: %s\n' "$*" >&2; }  # progress on stderr

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)}"   # fixed mtimes = reproducible bytes
[[ $EUID -eq 0 ]] || { log "must run as root: device nodes are made with mknod"; exit 1; }   # CI runs as root

if [[ -z "$kdir" ]]; then kdir="$("$here/fetch-kernel.sh" | tail -n1)"; fi   # cached after the first run
kver="$(awk -F= '$1 == "kernel_release" {print $2}' "$kdir/manifest.txt")"   # module directory name
kroot="$kdir/kroot"                                 # the unpacked kernel package

if [[ -z "$init" ]]; then                           # build the init as a static-pie glibc binary
  log "building static rescue-init"   # the slowest step; say what is happening
  # crt-static only here, never in .cargo/config.toml, so host builds and tests stay dynamic.
  (cd "$repo" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked \
      --target x86_64-unknown-linux-gnu -p rescue-init >&2)
  init="${CARGO_TARGET_DIR:-$repo/target}/x86_64-unknown-linux-gnu/release/rescue-init"   # cargo's output path
fi
file -L "$init" | grep -Eq 'static-pie linked|statically linked' \
  || { log "$init is not statically linked"; exit 1; }   # a dynamic /init would fail in the empty initramfs

stage="$(mktemp -d)"                                # fresh stage dir; its name never reaches the cpio
trap 'rm -rf "$stage"' EXIT                         # always clean up
umask 022                                           # fixed modes for everything created below

mkdir -p "$stage"/{dev,proc,sys,run,tmp,mnt,etc,sbin,lib/modules/"$kver"}   # mount points and tree skeleton
install -m 0755 "$init" "$stage/init"               # the kernel runs /init as PID 1
ln -s ../init "$stage/sbin/modprobe"                # the kernel's request_module() runs /sbin/modprobe (MODPROBE_PATH)
printf '127.0.0.1 localhost\n::1 localhost\n' > "$stage/etc/hosts"   # static glibc resolves nothing, not even localhost, without it
mknod -m 0600 "$stage/dev/console" c 5 1            # stdio before devtmpfs is mounted (std aborts without valid fds)
mknod -m 0666 "$stage/dev/null" c 1 3               # std reopens closed fds 0-2 on /dev/null
chmod 1777 "$stage/tmp"                             # sticky, world-writable like any /tmp

# Resolve every listed module with its dependencies and softdeps on the host (modprobe reads the
# kernel tree's modules.dep), keep the first occurrence of each file, and copy the files unchanged
# (they are signed; re-packing would break Secure Boot's module signature check).
mods="$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list" | awk '{print $1}')"   # names without comments
paths="$stage/.paths"                               # temporary list, removed before packing
: > "$paths"   # start from an empty list
for m in $mods; do   # resolve each listed module
  modprobe -d "$kroot" -S "$kver" --show-depends "$m" \
    | awk '$1 == "insmod" {print $2}' >> "$paths" \
    || { log "module $m: not in kernel $kver"; exit 1; }   # a typo in modules.list must fail the build
done
awk '!seen[$0]++' "$paths" | while read -r p; do    # dedupe, keeping load order
  rel="${p#"$kroot"/}"                              # lib/modules/<kver>/kernel/...
  mkdir -p "$stage/$(dirname "$rel")"   # keep the kernel tree layout (modules.dep paths are relative to it)
  cp "$p" "$stage/$rel"                             # byte-for-byte copy (signature intact)
done
rm -f "$paths"   # a build artefact, not part of the image
for f in modules.order modules.builtin modules.builtin.modinfo; do   # depmod needs these to index builtins
  cp "$kroot/lib/modules/$kver/$f" "$stage/lib/modules/$kver/$f"   # copied as they are
done
depmod -b "$stage" "$kver"                          # modules.dep/alias/softdep for exactly the shipped modules
rm -f "$stage/lib/modules/$kver/"*.bin              # binary indexes: the init reads the text files only

find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +   # mtimes are in the cpio headers
mkdir -p "$(dirname "$out")"   # the output directory may not exist yet
# Sorted names, root ownership, renumbered inodes, no device numbers of the build host:
(cd "$stage" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort \
  | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -n -9 > "$out.tmp"
mv "$out.tmp" "$out"                                # never leave a half-written initramfs under the final name

nmods="$(find "$stage/lib/modules" -name '*.ko' | wc -l)"   # for the summary line
log "kernel $kver, $nmods modules, init $(stat -c %s "$init") B"   # sizes for the build log
log "initramfs $out: $(stat -c %s "$out") B, sha256 $(sha256sum "$out" | cut -d' ' -f1)"   # size and hash, to compare builds
printf '%s\n' "$out"   # the path on stdout, for callers
