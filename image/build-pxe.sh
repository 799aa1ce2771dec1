#!/usr/bin/env bash
# Lays out a PXE directory for TFTP or HTTP: vmlinuz, initrd.gz and boot.ipxe rendered from
# pxe/boot.ipxe.in with the kernel arguments (the rescue.* keys go in --append).
#
# usage: image/build-pxe.sh --kernel VMLINUZ --initrd INITRD --out DIR [--append "ARGS"]
set -euo pipefail                                   # stop on the first failure, unset variable or failed pipe stage

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"   # image/ directory, for the template
kernel="" initrd="" out="" append=""                # all but --append are required
while [[ $# -gt 0 ]]; do                            # flags come in pairs
  case "$1" in
    --kernel) kernel="$2"; shift 2 ;;               # the bzImage
    --initrd) initrd="$2"; shift 2 ;;               # the initramfs
    --out) out="$2"; shift 2 ;;                     # the directory a TFTP/HTTP server will serve
    --append) append="$2"; shift 2 ;;               # extra kernel arguments
    *) echo "build-pxe: unknown argument $1" >&2; exit 2 ;;   # refuse typos
  esac
done
[[ -f "$kernel" && -f "$initrd" && -n "$out" ]] || { echo "build-pxe: --kernel, --initrd and --out are required" >&2; exit 2; }   # nothing to lay out without them

mkdir -p "$out"   # the served directory
cp "$kernel" "$out/vmlinuz"                         # the names boot.ipxe refers to
cp "$initrd" "$out/initrd.gz"   # the name boot.ipxe and initrd= use
cmdline="console=tty0 console=ttyS0,115200 printk.devkmsg=on${append:+ $append}"   # same defaults as the ISO
tpl="$(< "$here/pxe/boot.ipxe.in")"                # the template, read whole
printf '%s\n' "${tpl//@APPEND@/"$cmdline"}" > "$out/boot.ipxe"   # quoted replacement: & and \ stay literal
printf 'build-pxe: %s: vmlinuz %s B, initrd.gz %s B, boot.ipxe\n' "$out" \
  "$(stat -c %s "$out/vmlinuz")" "$(stat -c %s "$out/initrd.gz")" >&2
printf '%s\n' "$out"   # the directory on stdout, for callers
