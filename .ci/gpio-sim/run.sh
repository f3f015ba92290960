#!/bin/sh
# CI entry point: real Linux GPIO tests under qemu with a gpio-sim chip (NOTES §4).
#
#   .ci/gpio-sim/run.sh            # from the repository root or anywhere
#
# Steps: (1) build or reuse the small kernel (cached by config hash under
# ${XDG_CACHE_HOME:-$HOME/.cache}/meter-rig/); (2) build the integration-test binary and `rig`
# statically; (3) pack an initramfs (busybox-static + the test binary + init.sh, and `rig` at the
# same absolute path as on the host, so the tests' CARGO_BIN_EXE_rig and CARGO_MANIFEST_DIR
# resolve in the guest); (4) boot it in qemu (TCG; KVM hangs on this machine) with a timeout and
# require the guest's "METER-RIG-GUEST-RESULT rc=0".
#
# The guest's UART pair: ttyS1 and ttyS2 are two more 8250s joined by qemu itself: ttyS1's chardev
# listens on a Unix socket and ttyS2's chardev connects to it (no host helper such as socat). It
# is a byte pipe: measured in the guest (gpio_sim::uart_pair::the_uart_pair_is_an_unpaced_byte_pipe)
# the emulated 8250 does not pace at the configured rate (30 bytes "at 300 baud", nominally
# 1000 ms, arrived in 1-8 ms), so every line timing in the guest comes from gpio-sim edges the
# tests drive at the UART rate and the kernel timestamps, never from the UART. With the kernel
# cached the whole guest run takes about 4 min (readout suite at 300 baud, rig serve with pins).
# Loopback TCP (rig serve in the guest) needs CONFIG_NET/INET/UNIX and `lo` up (init.sh).
# Needs: apt-get install -y linux-source-6.1 flex bison bc libelf-dev busybox-static \
#        qemu-system-x86 cpio jq
# Env: QEMU_TIMEOUT (s, default 900), CARGO_TARGET_DIR (respected), GUEST_FILTER (the test filter
# the guest runs, default gpio_sim::; e.g. gpio_sim::uart_pair:: while working on those tests).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
start=$(date +%s)

for tool in qemu-system-x86_64 cpio busybox jq; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool missing; see the apt-get line in $0" >&2; exit 2; }
done
[ -x /bin/busybox ] && file_bb=/bin/busybox || file_bb=$(command -v busybox)

kernel=$("$here/build-kernel.sh")
echo "run.sh: kernel $kernel ($(( $(date +%s) - start )) s)"

cd "$root"
json=$(RUSTFLAGS='-C target-feature=+crt-static' cargo test --no-run --test integration --features gpio-sim \
    --target x86_64-unknown-linux-gnu --message-format=json 2>/dev/null)
bin=$(printf '%s\n' "$json" | jq -r 'select(.reason == "compiler-artifact" and .target.name == "integration" and .profile.test == true) | .executable' | tail -1)
rig=$(printf '%s\n' "$json" | jq -r 'select(.reason == "compiler-artifact" and .target.name == "rig" and (.target.kind | index("bin")) and .executable != null) | .executable' | tail -1)
for b in "$bin" "$rig"; do
    [ -n "$b" ] && [ -x "$b" ] || { echo "run.sh: static test build failed; rerun the cargo command above without --message-format" >&2; exit 2; }
    if ldd "$b" 2>&1 | grep -q "=>"; then echo "run.sh: $b is dynamically linked" >&2; exit 2; fi
done
echo "run.sh: test binary $bin, rig $rig ($(( $(date +%s) - start )) s)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin"
cp "$file_bb" "$work/root/bin/busybox"
cp "$bin" "$work/root/tests"
# the tests start `rig` by its build path and run it in the repository root: both exist in the guest
mkdir -p "$work/root$(dirname "$rig")" "$work/root$root"
cp "$rig" "$work/root$rig"
cp "$here/init.sh" "$work/root/init"
chmod +x "$work/root/init" "$work/root/tests"
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.gz"

log="$work/guest.log"
set +e
# ttyS0 the console; ttyS1 <-> ttyS2 the UART pair (u1 listens, u2 connects to it)
timeout "${QEMU_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot -nic none \
    -serial mon:stdio \
    -chardev "socket,id=u1,path=$work/uart.sock,server=on,wait=off" -serial chardev:u1 \
    -chardev "socket,id=u2,path=$work/uart.sock" -serial chardev:u2 \
    -kernel "$kernel" -initrd "$work/initramfs.gz" \
    -append "console=ttyS0 quiet panic=-1 rdinit=/init guest_filter=${GUEST_FILTER:-gpio_sim::}" > "$log" 2>&1
qrc=$?
set -e
tr -d '\r' < "$log" | sed -n '/guest: kernel/,$p' | sed 's/^.*guest: kernel/guest: kernel/'
elapsed=$(( $(date +%s) - start ))
if [ "$qrc" = 124 ]; then
    echo "run.sh: FAIL: qemu timed out after ${QEMU_TIMEOUT:-900} s (wall ${elapsed} s)" >&2
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
