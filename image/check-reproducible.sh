#!/usr/bin/env bash
# Reproducibility check: builds the initramfs and the ISO twice, in different temporary
# directories and with the init binary's mtime changed in between, and compares sha256.
# With --rebuild-init the static binary is also built twice in two fresh cargo target dirs
# (slow: two full release builds).
#
# usage: image/check-reproducible.sh [--init PATH] [--rebuild-init]
set -euo pipefail                                   # stop on the first failure, unset variable or failed pipe stage

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"   # image/ directory
repo="$(cd "$here/.." && pwd)"                      # workspace root
init="" rebuild=0                                   # defaults, overridden by flags
while [[ $# -gt 0 ]]; do                            # parse flags
  case "$1" in
    --init) init="$2"; shift 2 ;;                   # use this static binary for both builds
    --rebuild-init) rebuild=1; shift ;;             # also prove the binary itself reproducible
    *) echo "check-reproducible: unknown argument $1" >&2; exit 2 ;;   # refuse typos
  esac
done
log() { printf 'check-reproducible: %s\n' "$*" >&2; }   # progress on stderr
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct)}"   # both builds share one epoch

work="$(mktemp -d)"                                 # all outputs of this check
trap 'rm -rf "$work"' EXIT                          # cleaned up whatever happens
kdir="$("$here/fetch-kernel.sh" | tail -n1)"        # the cached kernel (fetched once)
kver="$(awk -F= '$1 == "kernel_release" {print $2}' "$kdir/manifest.txt")"   # for the kernel file name

if [[ $rebuild == 1 ]]; then                        # two clean release builds in separate target dirs
  for n in 1 2; do   # two independent builds
    (cd "$repo" && CARGO_TARGET_DIR="$work/target$n" RUSTFLAGS='-C target-feature=+crt-static' \
      cargo build --release --locked --target x86_64-unknown-linux-gnu -p rescue-init >&2)
  done
  a="$work/target1/x86_64-unknown-linux-gnu/release/rescue-init"   # first build
  b="$work/target2/x86_64-unknown-linux-gnu/release/rescue-init"   # second build
  cmp "$a" "$b" || { log "the static binary differs between two clean builds"; exit 1; }   # byte-compare
  log "binary reproducible: $(sha256sum "$a" | cut -d' ' -f1)"   # the hash, for the log
  init="$a"                                         # use it for the image builds below
fi
if [[ -z "$init" ]]; then                           # no binary given: build it once, the normal way
  init="$("$here/build-initramfs.sh" --kernel-dir "$kdir" --out "$work/warmup.gz" >/dev/null 2>&1; \
          echo "${CARGO_TARGET_DIR:-$repo/target}/x86_64-unknown-linux-gnu/release/rescue-init")"
fi

for n in 1 2; do                                    # the same inputs twice
  touch "$init"                                     # a new mtime on the input must not matter
  "$here/build-initramfs.sh" --kernel-dir "$kdir" --init "$init" --out "$work/$n/initrd.gz" >/dev/null   # a fresh stage dir each time
  "$here/build-iso.sh" --kernel "$kdir/kroot/boot/vmlinuz-$kver" --initrd "$work/$n/initrd.gz" \
    --out "$work/$n/rescue.iso" >/dev/null
done
status=0   # set to 1 on any difference
for f in initrd.gz rescue.iso; do                   # compare each artifact
  h1="$(sha256sum "$work/1/$f" | cut -d' ' -f1)"   # first build
  h2="$(sha256sum "$work/2/$f" | cut -d' ' -f1)"   # second build
  if [[ "$h1" == "$h2" ]]; then   # equal bytes = reproducible
    log "$f reproducible: $h1 ($(stat -c %s "$work/1/$f") B)"
  else
    log "$f DIFFERS: $h1 vs $h2"; status=1         # report every difference before failing
  fi
done
exit "$status"   # non-zero when anything differed
