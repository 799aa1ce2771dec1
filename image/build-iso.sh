#!/usr/bin/env bash
# Builds a hybrid rescue ISO that boots in BIOS mode (isolinux) and UEFI mode (a grub-mkimage EFI
# binary with its config in a memdisk), from CD or as a USB disk. Byte-reproducible: no random IDs,
# every timestamp from SOURCE_DATE_EPOCH (xorriso and mtools honour it).
#
# usage: image/build-iso.sh --kernel VMLINUZ --initrd INITRD [--out FILE] [--append "ARGS"] [--add DIR]
#   --append  extra kernel arguments, e.g. the rescue.* keys (defaults: console on VGA and serial)
#   --add     a directory whose content goes to the ISO's root: backups, a CA bundle, a plan. The
#             booted image mounts the medium read-only at /run/rescue-init/media/<device> and
#             searches it for backups; rescue.ca=/ca.pem and rescue.plan=/plan.yaml find files there
set -euo pipefail                                   # stop on the first failure, unset variable or failed pipe stage

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"   # image/ directory
repo="$(cd "$here/.." && pwd)"                      # workspace root, for git and the default output
kernel="" initrd="" out="$repo/build/image/rescue.iso" append="" add=""   # defaults, overridden by flags
while [[ $# -gt 0 ]]; do                            # flags come in pairs
  case "$1" in
    --kernel) kernel="$2"; shift 2 ;;               # the bzImage (vmlinuz) with EFI stub
    --initrd) initrd="$2"; shift 2 ;;               # output of build-initramfs.sh
    --out) out="$2"; shift 2 ;;                     # where the ISO goes
    --append) append="$2"; shift 2 ;;               # rescue.* keys and test switches
    --add) add="$2"; shift 2 ;;                     # operator files for the ISO root
    *) echo "build-iso: unknown argument $1" >&2; exit 2 ;;   # refuse typos
  esac
done
[[ -f "$kernel" && -f "$initrd" ]] || { echo "build-iso: --kernel and --initrd are required" >&2; exit 2; }   # nothing to build without them
log() { printf 'build-iso: %s\n' "$*" >&2; }        # progress on stderr

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)}"   # one clock for every tool
# tty0 first and ttyS0 last: the kernel logs to both, and /dev/console (the init's stdio) is the last one.
# printk.devkmsg=on lifts kmsg's rate limit, so no line of the init's log is dropped.
cmdline="console=tty0 console=ttyS0,115200 printk.devkmsg=on${append:+ $append}"

iso="$(mktemp -d)"                                  # ISO root, built from scratch each time
trap 'rm -rf "$iso"' EXIT                           # always clean up
mkdir -p "$iso/isolinux" "$iso/boot" "$iso/efi-build/boot/grub"   # BIOS loader dir, kernel dir, memdisk tree
cp "$kernel" "$iso/boot/vmlinuz"                    # the same kernel for BIOS and UEFI
cp "$initrd" "$iso/boot/initrd"                     # the same initramfs for both

# BIOS: isolinux reads isolinux.cfg; ldlinux.c32 is its mandatory second stage.
cp /usr/lib/ISOLINUX/isolinux.bin "$iso/isolinux/"   # the El Torito BIOS boot image
cp /usr/lib/syslinux/modules/bios/ldlinux.c32 "$iso/isolinux/"   # isolinux refuses to start without it
cat > "$iso/isolinux/isolinux.cfg" <<CFG
SERIAL 0 115200
DEFAULT rescue
PROMPT 0
TIMEOUT 0
LABEL rescue
  KERNEL /boot/vmlinuz
  INITRD /boot/initrd
  APPEND $cmdline
CFG

# UEFI: a standalone GRUB whose config lives in a memdisk tar, so no grub tree is needed on the ISO.
cat > "$iso/efi-build/boot/grub/grub.cfg" <<CFG
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
search --no-floppy --file --set=root /boot/vmlinuz
linux /boot/vmlinuz $cmdline
initrd /boot/initrd
boot
CFG
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    -C "$iso/efi-build" -cf "$iso/efi-build/memdisk.tar" boot   # deterministic tar: sorted, fixed owner and time
grub-mkimage -O x86_64-efi -p '(memdisk)/boot/grub' -m "$iso/efi-build/memdisk.tar" \
    -o "$iso/efi-build/BOOTX64.EFI" \
    memdisk tar linux normal iso9660 search search_fs_file part_gpt part_msdos serial terminal configfile echo   # only what grub.cfg uses
# The EFI system partition image: a 1.44 MB FAT with a fixed serial number and label.
TZ=UTC mformat -C -f 1440 -N 12345678 -v EFIBOOT -i "$iso/boot/efiboot.img" ::
TZ=UTC mmd -i "$iso/boot/efiboot.img" ::/EFI ::/EFI/BOOT
touch -d "@$SOURCE_DATE_EPOCH" "$iso/efi-build/BOOTX64.EFI"   # mcopy -m keeps this mtime in the FAT entry
TZ=UTC mcopy -m -i "$iso/boot/efiboot.img" "$iso/efi-build/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI   # the UEFI default loader path
rm -rf "$iso/efi-build"                             # build inputs do not belong on the ISO
if [[ -n "$add" ]]; then                            # the operator's files: backups, CA, plan
  [[ -d "$add" ]] || { echo "build-iso: --add $add is not a directory" >&2; exit 2; }
  for reserved in boot isolinux; do                 # never let them shadow the loaders
    [[ ! -e "$add/$reserved" ]] || { echo "build-iso: --add $add must not hold /$reserved" >&2; exit 2; }
  done
  cp -a "$add/." "$iso/"                            # content only: the directory itself is not a level
fi

find "$iso" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +   # file dates are recorded in the ISO directory
mkdir -p "$(dirname "$out")"   # the output directory may not exist yet
# El Torito BIOS (isolinux, with boot-info table) + UEFI (efiboot.img), an isohybrid MBR for USB
# sticks in BIOS mode and a GPT entry for the EFI image in UEFI mode.
xorriso -as mkisofs -quiet -o "$out.tmp" -V RESCUE -r -J \
  -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \
  -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
  -eltorito-alt-boot -e boot/efiboot.img -no-emul-boot -isohybrid-gpt-basdat \
  "$iso"
mv "$out.tmp" "$out"                                # only a complete ISO gets the final name
log "ISO $out: $(stat -c %s "$out") B, sha256 $(sha256sum "$out" | cut -d' ' -f1)"   # size and hash, to compare builds
printf '%s\n' "$out"   # the path on stdout, for callers
