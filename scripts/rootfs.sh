#!/usr/bin/env bash
# Builds the small Linux guest's root file system: an ext4 image (mke2fs -d, no root needed) with
# Debian's static busybox as /sbin/init and /bin/sh, the /dev, /proc and /sys mount points, an
# inittab that gives a shell on the console, and a marker file. Prints the image's path. Cached under
# OUT_DIR, keyed by this script and busybox's version. Usage: scripts/rootfs.sh OUT_DIR
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: rootfs.sh OUT_DIR}

"$root/scripts/deps.sh" kernel >&2  # stdout carries only the path
busybox=/bin/busybox
version=$(dpkg-query -W -f='${Version}' busybox-static)
key=$( (echo "$version"; cat "$0") | sha256sum | cut -c1-16)
mkdir -p "$out"
out=$(cd "$out" && pwd)
image="$out/rootfs.ext4"
if [[ -f "$out/rootfs.key" && $(cat "$out/rootfs.key") == "$key" && -f "$image" ]]; then echo "$image"; exit 0; fi

rm -f "$out/rootfs.key"
tree=$(mktemp -d "$out/tree.XXXXXX")
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree"/{bin,sbin,dev,proc,sys,etc/init.d,tmp,root}
install -m 0755 "$busybox" "$tree/bin/busybox"
ln -s ../bin/busybox "$tree/sbin/init"
for applet in sh ls cat echo mount umount dmesg ps uname poweroff; do ln -s busybox "$tree/bin/$applet"; done
# busybox init without an inittab would also try tty2..tty4, which this guest does not have.
cat > "$tree/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
::askfirst:-/bin/sh
::ctrlaltdel:/bin/poweroff -f
EOF
cat > "$tree/etc/init.d/rcS" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
cat /etc/evmm-rootfs
EOF
chmod 0755 "$tree/etc/init.d/rcS"
# The marker a test (or a person at the shell) checks to know this image is the root.
echo "evmm guest root file system $key" > "$tree/etc/evmm-rootfs"

# 16 MiB: busybox is about 2 MiB, and ext4's journal takes 1 MiB of a file system this small.
rm -f "$image.tmp"
mke2fs -q -F -t ext4 -L evmm-root -E root_owner=0:0 -d "$tree" "$image.tmp" 16M >&2
mv "$image.tmp" "$image"
echo "$key" > "$out/rootfs.key"
echo "$image"
