#!/usr/bin/env bash
# Run one command inside the arm64 root file system built by rootfs.sh (qemu user-mode
# emulation), with /proc, /sys and /dev mounted for its duration and unmounted after.
#
#   sudo runtimes/aarch64/in_root.sh ROOT COMMAND [ARGS...]
set -euo pipefail

ROOT="${1:?usage: in_root.sh ROOT COMMAND [ARGS...]}"
shift
if [[ ! -f "$ROOT/.edgeseg-rootfs-ok" ]]; then
  echo "in_root.sh: $ROOT is not a finished root file system (build it with runtimes/aarch64/rootfs.sh)" >&2
  exit 2
fi
mounted=()
cleanup() {
  local i
  for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
for spec in "proc proc" "sys sysfs" "dev bind"; do
  name="${spec%% *}"; kind="${spec##* }"
  target="$ROOT/$name"
  mountpoint -q "$target" && continue
  if [[ "$kind" == bind ]]; then mount --bind "/$name" "$target"; else mount -t "$kind" "$name" "$target"; fi
  mounted+=("$target")
done
# qemu before 8.1 passes the host's x86 /proc/cpuinfo through to the emulated process; the cpuinfo
# library inside LiteRT cannot parse it and the interpreter segfaults on load. An ARM description
# (Cortex-A76, the Raspberry Pi 5's core, with the features qemu's default CPU emulates) goes over
# it for the duration of the command.
if [[ "$(uname -m)" == x86_64 ]]; then
  fake="$ROOT/.edgeseg-cpuinfo"
  : > "$fake"
  for ((cpu=0; cpu<$(nproc); cpu++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n' "$cpu" >> "$fake"
  done
  mount --bind "$fake" "$ROOT/proc/cpuinfo"
  mounted+=("$ROOT/proc/cpuinfo")
fi
# pip inside reaches the package registry the way the host does: its DNS, its proxy settings and,
# behind a TLS-inspecting proxy, the CA bundle the host's pip trusts (PIP_CERT / SSL_CERT_FILE)
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# The emulated CPU is the Raspberry Pi 5's Cortex-A76 (dot product, FP16; no i8mm, SVE or SME), not
# qemu's default "max" CPU: under "max" (qemu 7.2) XNNPACK picked kernels for the newer features and
# the full-integer INT8 TFLite file gave wrong outputs (0 % agreement with x86), where the A76 gives
# x86's result. EDGESEG_QEMU_CPU picks another model (qemu-aarch64-static -cpu help).
cpu="${EDGESEG_QEMU_CPU:-cortex-a76}"
envs=(HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 QEMU_CPU="$cpu")
for var in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy PIP_INDEX_URL PIP_DEFAULT_TIMEOUT; do
  [[ -n "${!var:-}" ]] && envs+=("$var=${!var}")
done
host_ca="${PIP_CERT:-${SSL_CERT_FILE:-}}"
if [[ -n "$host_ca" && -f "$host_ca" ]]; then
  cp "$host_ca" "$ROOT/etc/ssl/certs/host-ca-bundle.crt"
  envs+=(PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt)
fi
QEMU_CPU="$cpu" chroot "$ROOT" /usr/bin/env -i "${envs[@]}" "$@"
