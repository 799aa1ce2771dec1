#!/usr/bin/env bash
# Installs the Debian packages the image build and the VM tests need (CI runs this as root).
# Why each package is listed is noted next to it; nothing here touches the host kernel.
set -euo pipefail                                   # stop on the first failure, unset variable or failed pipe stage

pkgs=(
  qemu-system-x86                                   # the VM (TCG only: /dev/kvm here cannot run guests)
  ovmf                                              # UEFI firmware for the ISO-UEFI and PXE-UEFI boots
  ipxe-qemu                                         # NIC option ROMs that run the PXE/iPXE boot
  xorriso                                           # writes the hybrid ISO
  isolinux                                          # BIOS boot loader of the ISO (isolinux.bin, isohdpfx.bin)
  syslinux-common                                   # ldlinux.c32, isolinux's second stage (only a recommendation of isolinux)
  grub-efi-amd64-bin                                # grub-mkimage's x86_64-efi modules for the UEFI loader
  grub-pc-bin                                       # grub i386-pc modules (grub-mkimage/grub-mkrescue need both trees)
  mtools                                            # builds the EFI FAT image without mounting it
  kmod                                              # depmod/modprobe to resolve module dependencies at build time
  e2fsprogs                                         # mkfs.ext4 -d builds the test host disk; debugfs reads it back
  cpio                                              # writes the newc initramfs
  xfsprogs                                          # mkfs.xfs for the superblock parser tests
  dosfstools                                        # mkfs.vfat for the superblock parser tests
  fdisk                                             # sfdisk makes GPT/MBR test images and is the PARTUUID oracle
  xz-utils                                          # unpacks the bzImage payload into an uncompressed vmlinux (PVH boot)
  zstd                                              # optional initramfs compression
  shellcheck                                        # lints these scripts
)
export DEBIAN_FRONTEND=noninteractive               # never stop for a debconf question
apt-get update -qq                                  # package lists must be current for the kernel ABI name to resolve
apt-get install -y -qq --no-install-recommends "${pkgs[@]}"   # install exactly the list, nothing recommended on top
