#!/usr/bin/env bash
# Fetches Debian's stock cloud kernel (the package linux-image-cloud-amd64 depends on) with
# `apt-get download`, unpacks its /boot/vmlinuz and decompresses the bzImage payload into a vmlinux
# that `evmm run --kernel` boots through its PVH note. Both are cached under OUT_DIR: the vmlinux as
# vmlinux-VERSION, the bzImage as vmlinuz-VERSION. Prints the vmlinux's path, or with the mode
# `bzimage` the bzImage's (for the Linux boot protocol loader and its tests). Exits 77 with the
# reason on stderr when the package cannot be had (no apt source, offline), so that a test can skip
# rather than fail. Usage: scripts/cloud_kernel.sh OUT_DIR [vmlinux|bzimage]
set -euo pipefail

out=${1:?usage: cloud_kernel.sh OUT_DIR [vmlinux|bzimage]}
mode=${2:-vmlinux}
case $mode in
  vmlinux) prefix=vmlinux ;;
  bzimage) prefix=vmlinuz ;;
  *) echo "cloud_kernel: unknown mode '$mode'; want vmlinux or bzimage" >&2; exit 2 ;;
esac
skip() { echo "cloud_kernel: $*" >&2; exit 77; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
# A cached image stays usable offline.
cached=$(ls "$out"/$prefix-*-cloud-amd64 2>/dev/null | sort -V | tail -n1 || true)
if [[ -n "$cached" && ${CLOUD_KERNEL_REFRESH:-0} != 1 ]]; then echo "$cached"; exit 0; fi

command -v apt-cache >/dev/null || skip "no apt-cache on this host"
# The metapackage names the real image package (linux-image-6.1.0-N-cloud-amd64).
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
      sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1 || true)
[[ -n "$pkg" ]] || skip "apt knows no linux-image-cloud-amd64 (no Debian apt source?)"
version=${pkg#linux-image-}
vmlinux="$out/vmlinux-$version"
wanted="$out/$prefix-$version"
if [[ -f "$wanted" ]]; then echo "$wanted"; exit 0; fi

work=$(mktemp -d "$out/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt drops privileges to _apt for the download; a directory it may write to avoids the warning.
chmod 777 "$work"
(cd "$work" && apt-get download -q "$pkg" >&2) || skip "apt-get download $pkg failed (offline?)"
dpkg-deb -x "$work"/"$pkg"_*.deb "$work/root"
cp "$work/root/boot/vmlinuz-$version" "$out/vmlinuz-$version"
vmlinuz="$out/vmlinuz-$version"
# A cache from before the bzImage was kept has the vmlinux already.
if [[ -f "$vmlinux" ]]; then echo "$wanted"; exit 0; fi

# The bzImage carries the kernel ELF compressed with one of these; the first offset whose
# decompression is an ELF file is it (the magic bytes can also occur by chance in the setup code).
decompress() {  # FORMAT OFFSET
  case $1 in
    gzip) tail -c +"$2" "$vmlinuz" | gzip -dc 2>/dev/null ;;
    xz) tail -c +"$2" "$vmlinuz" | xz -dc 2>/dev/null ;;
    zstd) tail -c +"$2" "$vmlinuz" | zstd -dc 2>/dev/null ;;
    lz4) tail -c +"$2" "$vmlinuz" | lz4 -dc 2>/dev/null ;;
  esac
}
for spec in gzip:1f8b08 xz:fd377a585a00 zstd:28b52ffd lz4:02214c18; do
  format=${spec%%:*} magic=${spec#*:}
  for off in $(python3 -c '
import sys
data, magic = open(sys.argv[1], "rb").read(), bytes.fromhex(sys.argv[2])
i = data.find(magic)
while i >= 0:
    print(i + 1); i = data.find(magic, i + 1)' "$vmlinuz" "$magic"); do
    decompress "$format" "$off" > "$work/vmlinux" || true
    if [[ $(head -c 4 "$work/vmlinux" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; then
      # Booting through PVH needs the Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (type 0x12).
      if ! readelf -n "$work/vmlinux" | grep -q 'Xen.*0x00000012\|PHYS32_ENTRY'; then
        echo "cloud_kernel: $pkg's vmlinux has no PVH entry note" >&2; exit 1
      fi
      mv "$work/vmlinux" "$vmlinux"
      echo "$wanted"
      exit 0
    fi
  done
done
echo "cloud_kernel: found no compressed ELF in $vmlinuz" >&2
exit 1
