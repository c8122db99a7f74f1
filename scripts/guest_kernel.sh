#!/usr/bin/env bash
# Builds the small Linux guest (tinyconfig plus guests/linux/tiny.config) from Debian's
# linux-source-6.1 and prints the path of its vmlinux; its bzImage is beside it, at
# OUT_DIR/build/arch/x86/boot/bzImage. The result is cached under OUT_DIR, keyed by
# the hash of the config fragment and the source package's version: an unchanged fragment costs
# nothing, a changed one rebuilds (incrementally, in the same O= directory). About 12 minutes on
# 2 busy cores from scratch. Usage: scripts/guest_kernel.sh OUT_DIR [FRAGMENT]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: guest_kernel.sh OUT_DIR [FRAGMENT]}
fragment=${2:-$root/guests/linux/tiny.config}
jobs=${GUEST_KERNEL_JOBS:-$(nproc)}

"$root/scripts/deps.sh" kernel >&2  # stdout carries only the path
tarball=/usr/src/linux-source-6.1.tar.xz
version=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( (echo "$version"; cat "$fragment") | sha256sum | cut -c1-16)
mkdir -p "$out"
out=$(cd "$out" && pwd)
build="$out/build"
if [[ -f "$build/vmlinux.key" && $(cat "$build/vmlinux.key") == "$key" && -f "$build/arch/x86/boot/bzImage" ]]; then
  echo "$build/vmlinux"; exit 0
fi

# One source tree per package version, unpacked once; the build goes to its own O= directory.
src="$out/linux-source-$version"
if [[ ! -f "$src/.unpacked" ]]; then
  echo "guest_kernel: unpacking $tarball" >&2
  rm -rf "$src" "$src.tmp" && mkdir -p "$src.tmp"
  tar -xf "$tarball" -C "$src.tmp" --strip-components=1
  touch "$src.tmp/.unpacked" && mv "$src.tmp" "$src"
fi

echo "guest_kernel: building $build (config $fragment)" >&2
rm -f "$build/vmlinux.key" && mkdir -p "$build"
kmake=(nice -n 10 make -s -C "$src" O="$build" -j"$jobs")
"${kmake[@]}" tinyconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$fragment" >/dev/null
"${kmake[@]}" olddefconfig >&2
# An option Kconfig dropped (a missing dependency) would make a different kernel than the
# fragment says: refuse rather than test the wrong thing.
missing=$(grep -E '^CONFIG_[A-Z0-9_]+=' "$fragment" | while read -r line; do
  grep -qxF "$line" "$build/.config" || echo "$line"; done)
if [[ -n "$missing" ]]; then
  echo "guest_kernel: options the kernel's Kconfig did not take:" >&2; echo "$missing" >&2; exit 1
fi
"${kmake[@]}" vmlinux bzImage >&2
echo "$key" > "$build/vmlinux.key"
echo "$build/vmlinux"
