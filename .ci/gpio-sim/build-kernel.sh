#!/bin/sh
# Builds (or reuses) the small gpio-sim kernel. Prints the path of bzImage on stdout.
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/meter-rig/kernel-<hash>/bzImage, where <hash> covers
# kernel.config, this script and the Debian linux-source version. A second run skips the build.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src_tar=/usr/src/linux-source-6.1.tar.xz
[ -f "$src_tar" ] || { echo "build-kernel: $src_tar missing (apt-get install linux-source-6.1)" >&2; exit 2; }
src_ver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || stat -c %s "$src_tar")
key=$( (cat "$here/kernel.config" "$here/build-kernel.sh"; echo "$src_ver") | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/meter-rig
out=$cache/kernel-$key
if [ -f "$out/bzImage" ]; then
    echo "build-kernel: cached $out/bzImage" >&2
    echo "$out/bzImage"
    exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/kbuild.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-kernel: building into $work (key $key, source $src_ver)" >&2
tar -C "$work" -xJf "$src_tar"
cd "$work"/linux-source-6.1
make -s tinyconfig >&2
./scripts/kconfig/merge_config.sh -m .config "$here/kernel.config" >&2
make -s olddefconfig >&2
# Every requested option must have survived olddefconfig (a silently dropped one = a broken guest).
missing=0
grep '^CONFIG_' "$here/kernel.config" | while IFS= read -r opt; do
    grep -qx "$opt" .config || { echo "build-kernel: $opt not set after olddefconfig" >&2; exit 1; }
done || missing=1
[ "$missing" = 0 ] || exit 2
make -s -j"$(nproc)" bzImage >&2
mkdir -p "$out.tmp"
cp arch/x86/boot/bzImage .config "$out.tmp/"
mv "$out.tmp" "$out"
echo "build-kernel: built $out/bzImage" >&2
echo "$out/bzImage"
