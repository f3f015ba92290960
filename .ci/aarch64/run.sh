#!/usr/bin/env bash
# The Pi's build in CI: `rig` and its tests cross-built for aarch64-unknown-linux-gnu with Debian's
# rustc-web and its arm64 standard library (multiarch), run under qemu-user through cargo's target
# runner (no binfmt handler is registered: the CI host's kernel is shared), and the binary kept as
# an artifact a lab can copy to a Pi: target/ci-artifacts/rig-aarch64-unknown-linux-gnu.
#
# Environment:
#   METER_RIG_AARCH64_TESTS  which integration tests run under emulation: a cargo test filter
#                            list (default below), or "all" for the whole binary (slow, see README)
#   METER_RIG_SKIP_APT=1     the packages are installed already
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never

TARGET=aarch64-unknown-linux-gnu
TARGET_DIR=target/aarch64-ci
ARTIFACTS=target/ci-artifacts
step() { echo; echo "=== aarch64: $* ($(date -u +%H:%M:%S))"; }

if [ "${METER_RIG_SKIP_APT:-0}" != 1 ]; then
  step "packages: rustc-web with its arm64 std (one version), the cross linker, qemu-user"
  export DEBIAN_FRONTEND=noninteractive
  dpkg --add-architecture arm64
  apt-get update -qq
  # rustc-web and libstd-rust-web-dev:arm64 must be the same version: take the candidate of one
  v=$(apt-cache policy rustc-web | awk '/Candidate:/ {print $2}')
  apt-get install -y -qq --no-install-recommends "rustc-web=$v" "libstd-rust-web-dev:arm64=$v" \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static >/dev/null
fi

# cargo from the rustup toolchain, rustc from Debian (it has the aarch64 std; rustup has no target)
export RUSTC=/usr/bin/rustc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# No `-L /usr/aarch64-linux-gnu`: that prefix has the cross loader (libc6-arm64-cross 2.36-8cross1)
# but not every library, and qemu then takes libc.so.6 from the multiarch libc6:arm64 (a later
# 2.36 update) beside it; loader and libc of different builds disagree on their private layout
# and pthread_create spins forever. Without the prefix both come from libc6:arm64 (/lib).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static"
# the tests start `rig` through the same prefix (tests/integration/util.rs)
export METER_RIG_RUNNER="$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER"
"$RUSTC" --version
# cargo SUBCOMMAND for the target, release, in its own target dir (the options go before any `--`)
cargo_x() {
  local sub=$1
  shift
  nice -n 10 cargo "$sub" --release --target "$TARGET" --target-dir "$TARGET_DIR" "$@"
}

step "cross build: rig and the test binaries (release: the tests judge timing under emulation)"
cargo_x build --bin rig
cargo_x test --no-run --lib --bins --test integration

step "the binary, kept as an artifact"
mkdir -p "$ARTIFACTS"
bin="$ARTIFACTS/rig-$TARGET"
cp "$TARGET_DIR/$TARGET/release/rig" "$bin"
aarch64-linux-gnu-readelf -h "$bin" | grep -E "Class|Machine"
aarch64-linux-gnu-readelf -h "$bin" | grep -q "Machine: *AArch64"
(cd "$ARTIFACTS" && sha256sum "rig-$TARGET" > "rig-$TARGET.sha256")
$METER_RIG_RUNNER "$bin" --version

step "the main job under qemu-user, and its JUnit against the common schema"
nice -n 10 $METER_RIG_RUNNER "$bin" run --out target/ci-run-aarch64
if python3 -c "import xmlschema" 2>/dev/null; then
  python3 tests/schema/validate_junit.py target/ci-run-aarch64/junit.xml
fi

step "unit tests under qemu-user"
cargo_x test --lib --bins

# The integration binary whole takes ~11 min under qemu-user on an idle machine and much more on
# a shared one; the default subset (about 70 s) is every module whose path differs on a Pi build:
# the serial backend over ptys (termios through the TCSETS fallback), rig read/sim/serve as
# processes (signals, HTTP and the graceful stop through qemu), --realtime, wiring files, decode.
# Left out: serial_run:: (whole suites over ptys in real time, ~6 s a case at 300 baud), run::
# (its filter also selects serial_run::), suites::, matrix::, healthy:: (the software meter
# in-process: the same code the unit tests and the main job run here); see README "The Pi's
# build in CI".
# One test at a time: emulation multiplies every test's CPU time, and tests running beside each
# other then starve the wall-clock bounds of the timing tests (a vanishing port reported within
# 3 s took longer with a neighbour on a loaded machine, 0.4 s alone).
tests=${METER_RIG_AARCH64_TESTS:-"serial:: read:: sim:: serve:: decode:: wiring:: realtime::"}
step "integration tests under qemu-user, one at a time: ${tests}"
if [ "$tests" = all ]; then
  cargo_x test --test integration -- --test-threads=1
else
  # shellcheck disable=SC2086  # the filters are separate words
  cargo_x test --test integration -- --test-threads=1 $tests
fi
step "aarch64 done"
