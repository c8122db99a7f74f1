#!/usr/bin/env bash
# Installs the Debian packages evmm needs that are missing. Idempotent, silent when nothing is
# missing, and safe without a terminal (CI). Usage: scripts/deps.sh [build|test|bench|fuzz|kernel]
set -euo pipefail

# One line each on why: README.md, "Dependencies".
build_pkgs=(g++ cmake ninja-build binutils libexpected-dev libfmt-dev libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev
            libbenchmark-dev libxen-dev libseccomp-dev libzydis-dev liburing-dev python3
            zlib1g-dev liblzma-dev liblz4-dev libzstd-dev libbz2-dev)
# The peers the tests and benchmarks talk to: QEMU 7.2 (microvm under TCG as a guest runner and a
# vhost-user frontend), qemu-storage-daemon and virtiofsd (vhost-user backends, qemu-system-common).
peer_pkgs=(qemu-system-x86 qemu-system-common)
fuzz_pkgs=(clang libclang-rt-dev)
# The small Linux guest (scripts/guest_kernel.sh), its root image (scripts/rootfs.sh) and the tools
# to unpack Debian's cloud kernel.
kernel_pkgs=(linux-source-6.1 make gcc flex bison bc libelf-dev libssl-dev xz-utils zstd e2fsprogs busybox-static)

want=("${build_pkgs[@]}")
case "${1:-build}" in
  test|bench) want+=("${peer_pkgs[@]}") ;;
  fuzz) want+=("${fuzz_pkgs[@]}") ;;
  kernel) want=("${kernel_pkgs[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "deps: installing ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then sudo=(sudo -n); else
    echo "deps: not root and no sudo; please install: ${missing[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet.
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
