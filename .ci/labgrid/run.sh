#!/usr/bin/env bash
# A real labgrid setup on loopback (issue 18): labgrid-coordinator, one labgrid-exporter
# exporting two `rig serve` instances (a healthy software meter and a defective one) as two
# places with tags, and the pytest example of contrib/labgrid reserving by tag, locking, running
# and releasing. Checks: the defective place's test fails naming the case, the healthy one
# passes, and a second client waiting for the same place gets it after the first releases.
# Needs `pip install -r contrib/labgrid/requirements.txt`. RIG=path/to/rig skips the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
t0=$(date +%s)

if [ -z "${RIG:-}" ]; then
  cargo build --release --quiet --bin rig
  RIG=$repo/target/release/rig
fi
for tool in labgrid-coordinator labgrid-exporter labgrid-client pytest curl; do
  command -v "$tool" >/dev/null || { echo "labgrid CI: $tool missing (pip install -r contrib/labgrid/requirements.txt; apt-get install curl)" >&2; exit 2; }
done

echo "=== unit tests of the labgrid module (proxy handling, outcomes, the isolated exporter class)"
pytest -q -p no:cacheprovider contrib/labgrid/test_meter_rig_labgrid.py

work=$(mktemp -d /tmp/meter-rig-labgrid.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    echo "labgrid CI failed (rc $rc); logs:" >&2
    for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 40 "$f" >&2; done
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fail() { echo "labgrid CI: FAIL: $*" >&2; exit 1; }

# two rigs: rig serve picks its own free port and prints it
start_rig() { # name meter-file
  "$RIG" serve --name "$1" --meter "$2" --listen 127.0.0.1:0 --data "$work/$1" \
    --sim-speed 3600 --interval 15m 2>"$work/$1.log" &
  pids+=($!)
}
start_rig rig-healthy fixtures/meters/default.toml
start_rig rig-defective fixtures/meters/faulty-slow-sum-bcc.toml
addr_of() {
  for _ in $(seq 200); do
    a=$(sed -n 's/.*listening on http:\/\///p' "$work/$1.log" | head -n1)
    [ -n "$a" ] && curl -sf "http://$a/health" >/dev/null && { echo "$a"; return; }
    sleep 0.1
  done
  fail "rig $1 did not become healthy: $(cat "$work/$1.log")"
}
healthy=$(addr_of rig-healthy)
defective=$(addr_of rig-defective)

coord_port=$(free_port)
export LG_COORDINATOR=127.0.0.1:$coord_port
(cd "$work" && exec labgrid-coordinator --listen "$LG_COORDINATOR" >"$work/coordinator.log" 2>&1) &
pids+=($!)
for _ in $(seq 100); do
  python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$coord_port),0.2)" 2>/dev/null && break
  sleep 0.1
done

cat >"$work/exporter.yaml" <<YAML
rig-healthy:
  MeterRig:
    host: ${healthy%:*}
    port: ${healthy##*:}
rig-defective:
  MeterRig:
    host: ${defective%:*}
    port: ${defective##*:}
YAML
labgrid-exporter --name ci-exporter --hostname 127.0.0.1 "$work/exporter.yaml" \
  >"$work/exporter.log" 2>&1 &
pids+=($!)
lg() { labgrid-client "$@"; }
for _ in $(seq 100); do
  [ "$(lg resources 2>/dev/null | grep -c MeterRig)" -ge 2 ] && break
  sleep 0.2
done
[ "$(lg resources | grep -c MeterRig)" -ge 2 ] || fail "the exporter did not export both rigs"
for fixture in healthy defective; do
  lg -p "rig-$fixture" create
  lg -p "rig-$fixture" add-match "ci-exporter/rig-$fixture/MeterRig"
  lg -p "rig-$fixture" set-tags meter=351-combi module=kk05 fixture="$fixture"
done

example=$repo/contrib/labgrid/example
export PYTHONPATH=$repo/contrib/labgrid${PYTHONPATH:+:$PYTHONPATH}
client() { # name tags [pytest args…]
  local name=$1 tags=$2; shift 2
  mkdir -p "$work/$name"
  (cd "$work/$name" && exec pytest -q -p no:cacheprovider "$example/test_meter_rig.py" \
     --lg-env "$example/env.yaml" --lg-coordinator "$LG_COORDINATOR" \
     --meter-rig-tags "$tags" --meter-rig-events "$work/events.jsonl" \
     --junitxml "$work/$name/pytest.xml" "$@") >"$work/$name.log" 2>&1
}

echo "=== the defective place: its test must fail naming the cases"
if client defective "meter=351-combi module=kk05 fixture=defective"; then
  fail "the defective place's test passed"
fi
grep -q "MeterRigRunFailed" "$work/defective.log" || fail "no MeterRigRunFailed: $(tail -n 30 "$work/defective.log")"
for case in readout.response_time readout.bcc; do
  grep -q "$case (fail" "$work/defective.log" || fail "the failure does not name $case"
done
grep -o "not passed: [^\"]*" "$work/defective.log" | head -n1

echo "=== the healthy place, two clients: the second waits and gets it after the first releases"
client first "meter=351-combi module=kk05 fixture=healthy" --meter-rig-hold 3 &
first=$!
for _ in $(seq 300); do grep -q '"event": "locked"' "$work/events.jsonl" 2>/dev/null && \
  grep '"event": "locked"' "$work/events.jsonl" | grep -q healthy && break; sleep 0.1; done
client second "meter=351-combi module=kk05 fixture=healthy" &
second=$!
wait "$first" || fail "the first healthy client failed: $(tail -n 30 "$work/first.log")"
wait "$second" || fail "the second healthy client failed: $(tail -n 30 "$work/second.log")"
python3 - "$work/events.jsonl" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
healthy = [e for e in ev if "fixture=healthy" in " ".join(e.get("tags", [])) or e.get("place") == "rig-healthy"]
by_pid = {}
for e in healthy:
    by_pid.setdefault(e["pid"], {})[e["event"]] = e
(a, b) = sorted(by_pid.values(), key=lambda d: d["locked"]["t"])
assert a["locked"]["place"] == b["locked"]["place"] == "rig-healthy", (a, b)
assert b["reserving"]["t"] < a["unlocking"]["t"], "the second client did not ask while the first held the place"
assert b["locked"]["t"] >= a["unlocking"]["t"], "the second client locked before the first released"
print(f"second client asked {a['unlocking']['t'] - b['reserving']['t']:.1f} s before the release, "
      f"locked {b['locked']['t'] - a['released']['t']:+.1f} s after it")
PY
runs=$(curl -sf "http://$healthy/runs")
echo "$runs" | python3 -c 'import json,sys; r=json.load(sys.stdin)["runs"]; assert len(r)==2 and all(x["state"]=="done" and x["id"].startswith("rig-healthy-") and x["requested_by"] for x in r), r; print("runs on rig-healthy:", [(x["id"], x["requested_by"]) for x in r])'
echo "=== an isolated exporter through meter_rig_labgrid.py carries labgrid's proxy information"
printf 'rig-isolated:\n  MeterRig:\n    host: 127.0.0.1\n    port: %s\n' "${healthy##*:}" >"$work/isolated.yaml"
python3 contrib/labgrid/meter_rig_labgrid.py exporter --isolated --name ci-isolated \
  "$work/isolated.yaml" >"$work/isolated.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  lg -v resources 2>/dev/null | grep -A8 "ci-isolated/rig-isolated" | grep -q "'proxy_required': True" && break
  sleep 0.2
done
lg -v resources | grep -A8 "ci-isolated/rig-isolated" | grep -q "'proxy_required': True" \
  || fail "the isolated exporter's MeterRig has no proxy information"
echo "labgrid CI: passed in $(( $(date +%s) - t0 )) s"
