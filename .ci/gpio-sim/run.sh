#!/bin/sh
# CI entry point: real Linux GPIO tests under qemu with a gpio-sim chip (NOTES §4).
#
#   .ci/gpio-sim/run.sh            # from the repository root or anywhere
#
# Steps: (1) build or reuse the small kernel (cached by config hash under
# ${XDG_CACHE_HOME:-$HOME/.cache}/meter-rig/); (2) build the integration-test binary statically;
# (3) pack an initramfs (busybox-static + the binary + init.sh); (4) boot it in qemu (TCG; KVM
# hangs on this machine) with a timeout and require the guest's "METER-RIG-GUEST-RESULT rc=0".
# Needs: apt-get install -y linux-source-6.1 flex bison bc libelf-dev busybox-static \
#        qemu-system-x86 cpio
# Env: QEMU_TIMEOUT (s, default 400), CARGO_TARGET_DIR (respected).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
start=$(date +%s)

for tool in qemu-system-x86_64 cpio busybox; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool missing; see the apt-get line in $0" >&2; exit 2; }
done
[ -x /bin/busybox ] && file_bb=/bin/busybox || file_bb=$(command -v busybox)

kernel=$("$here/build-kernel.sh")
echo "run.sh: kernel $kernel ($(( $(date +%s) - start )) s)"

cd "$root"
json=$(RUSTFLAGS='-C target-feature=+crt-static' cargo test --no-run --test integration --features gpio-sim \
    --target x86_64-unknown-linux-gnu --message-format=json 2>/dev/null)
bin=$(printf '%s\n' "$json" | jq -r 'select(.reason == "compiler-artifact" and .target.name == "integration" and .profile.test == true) | .executable' | tail -1)
[ -n "$bin" ] && [ -x "$bin" ] || { echo "run.sh: static test build failed; rerun the cargo command above without --message-format" >&2; exit 2; }
if ldd "$bin" 2>&1 | grep -q "=>"; then echo "run.sh: $bin is dynamically linked" >&2; exit 2; fi
echo "run.sh: test binary $bin ($(( $(date +%s) - start )) s)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin"
cp "$file_bb" "$work/root/bin/busybox"
cp "$bin" "$work/root/tests"
cp "$here/init.sh" "$work/root/init"
chmod +x "$work/root/init" "$work/root/tests"
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.gz"

log="$work/guest.log"
set +e
timeout "${QEMU_TIMEOUT:-400}" qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot -nic none \
    -kernel "$kernel" -initrd "$work/initramfs.gz" \
    -append 'console=ttyS0 quiet panic=-1 rdinit=/init' > "$log" 2>&1
qrc=$?
set -e
tr -d '\r' < "$log" | sed -n '/guest: kernel/,$p' | sed 's/^.*guest: kernel/guest: kernel/'
elapsed=$(( $(date +%s) - start ))
if [ "$qrc" = 124 ]; then
    echo "run.sh: FAIL: qemu timed out after ${QEMU_TIMEOUT:-400} s (wall ${elapsed} s)" >&2
    exit 1
fi
if tr -d '\r' < "$log" | grep -q '^METER-RIG-GUEST-RESULT rc=0$'; then
    echo "run.sh: PASS (wall ${elapsed} s)"
    exit 0
fi
echo "run.sh: full guest console:" >&2
tr -d '\r' < "$log" >&2
echo "run.sh: FAIL: guest did not report success (qemu exit $qrc, wall ${elapsed} s)" >&2
exit 1
