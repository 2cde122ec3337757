#!/usr/bin/env bash
# Build (once) an arm64 Debian bookworm root file system that runs on an x86 Linux host under
# qemu user-mode emulation: the base of Raspberry Pi OS (64-bit) and of JetPack's Ubuntu, with
# the same Python 3.11 and the same aarch64 wheels from PyPI.
#
#   sudo runtimes/aarch64/rootfs.sh [ROOT]      # default ROOT: ~/.cache/edgeseg/aarch64/bookworm
#
# Needs root (debootstrap, chroot, binfmt_misc) and Debian/Ubuntu's qemu-user-static, debootstrap
# and binfmt-support packages (installed here through apt when missing). Re-running reuses a
# finished ROOT (marker file .edgeseg-rootfs-ok); an unfinished one is removed and rebuilt.
set -euo pipefail

ROOT="${1:-${EDGESEG_AARCH64_ROOT:-$HOME/.cache/edgeseg/aarch64/bookworm}}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm

if [[ $EUID -ne 0 ]]; then
  echo "rootfs.sh: needs root (debootstrap, chroot and binfmt_misc); run it with sudo" >&2
  exit 2
fi
if [[ "$(uname -m)" != x86_64 && "$(uname -m)" != aarch64 ]]; then
  echo "rootfs.sh: unsupported host architecture $(uname -m)" >&2
  exit 2
fi

# 1. the emulator and the binfmt_misc entry that runs aarch64 ELF files through it
if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null \
   || ! command -v update-binfmts >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static debootstrap binfmt-support
fi
if [[ "$(uname -m)" == x86_64 ]]; then
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  if ! grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    echo "rootfs.sh: binfmt_misc has no enabled qemu-aarch64 entry (update-binfmts --enable qemu-aarch64 failed)" >&2
    exit 1
  fi
fi

# 2. the root file system (minbase + Python), built in a temp folder and renamed when complete
if [[ -f "$ROOT/.edgeseg-rootfs-ok" ]]; then
  echo "rootfs.sh: reusing $ROOT"
else
  TMP="$ROOT.partial"
  rm -rf "$TMP"
  mkdir -p "$(dirname "$ROOT")"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,libgomp1 \
    "$SUITE" "$TMP" "$MIRROR"
  cp /etc/resolv.conf "$TMP/etc/resolv.conf"
  chroot "$TMP" /usr/bin/python3 -c "import platform; assert platform.machine() == 'aarch64', platform.machine()"
  touch "$TMP/.edgeseg-rootfs-ok"
  rm -rf "$ROOT"
  mv "$TMP" "$ROOT"
  echo "rootfs.sh: built $ROOT"
fi
