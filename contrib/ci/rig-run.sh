#!/usr/bin/env bash
# Runs conformance suites on a `rig serve` over its HTTP API with curl and jq, for CI jobs
# (README: "CI recipes"). Exit codes as `rig run`: 0 passed; 1 a case failed, was inconclusive
# or errored; 2 usage or setup error, the rig refused, or the run was stopped or interrupted.
#
#   rig-run.sh --url http://rig:8061 [--suite NAME]… [--case ID]… [--out DIR]
#              [--token-file FILE] [--max-wall-time S] [--requested-by TEXT] [--poll S] [--paced]
#
# The run's junit.xml and record.json land in --out (default: out). SIGTERM or SIGINT (a
# cancelled job) stops the run on the rig (DELETE /runs/ID); if this script is killed outright,
# the rig ends the run at --max-wall-time (default 3600 s), its record saying so.
set -euo pipefail

url="" out="out" token_file="" max_wall=3600 poll=1 paced=false
who="${CI_JOB_URL:-${GITHUB_SERVER_URL:+$GITHUB_SERVER_URL/${GITHUB_REPOSITORY:-}/actions/runs/${GITHUB_RUN_ID:-}}}"
suites=() cases=()
usage() { echo "rig-run.sh: $*" >&2; echo "usage: rig-run.sh --url URL [--suite S]… [--case C]… [--out DIR] [--token-file F] [--max-wall-time S] [--requested-by T]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --url) url=${2:-}; shift 2 ;;
    --suite) suites+=("${2:-}"); shift 2 ;;
    --case) cases+=("${2:-}"); shift 2 ;;
    --out) out=${2:-}; shift 2 ;;
    --token-file) token_file=${2:-}; shift 2 ;;
    --max-wall-time) max_wall=${2:-}; shift 2 ;;
    --requested-by) who=${2:-}; shift 2 ;;
    --poll) poll=${2:-}; shift 2 ;;
    --paced) paced=true; shift ;;
    *) usage "unknown argument $1" ;;
  esac
done
[ -n "$url" ] || usage "--url is required (e.g. http://127.0.0.1:8061)"
command -v jq >/dev/null || usage "jq is missing (apt-get install jq)"
[ -n "$who" ] || who="rig-run.sh $(id -un)@$(hostname)"

auth=()
if [ -n "$token_file" ]; then
  auth=(-H "Authorization: Bearer $(tr -d '[:space:]' <"$token_file")")
fi
resp=$(mktemp)
trap 'rm -f "$resp"' EXIT
api() { # METHOD PATH [BODY] → the HTTP code on stdout, the body in $resp
  curl -sS -o "$resp" -X "$1" "${auth[@]}" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} -w '%{http_code}' "$url$2" || { echo "rig-run.sh: cannot reach $url" >&2; exit 2; }
}

body=$(jq -n --arg who "$who" --argjson wall "$max_wall" --argjson paced "$paced" \
  '{suites: [], cases: [], paced: $paced, requested_by: $who, max_wall_time_s: $wall}' |
  jq --argjson s "$(printf '%s\n' "${suites[@]}" | jq -R . | jq -s 'map(select(. != ""))')" \
     --argjson c "$(printf '%s\n' "${cases[@]}" | jq -R . | jq -s 'map(select(. != ""))')" \
     '.suites = $s | .cases = $c')
code=$(api POST /runs "$body")
[ "$code" = 202 ] || { echo "rig-run.sh: the rig refused the run (HTTP $code): $(cat "$resp")" >&2; exit 2; }
id=$(jq -r .id "$resp")
echo "rig-run.sh: run $id on $url"
stop_run() { api DELETE "/runs/$id" >/dev/null || true; echo "rig-run.sh: cancelled; asked the rig to stop run $id" >&2; exit 2; }
trap stop_run INT TERM

while :; do
  code=$(api GET "/runs/$id")
  [ "$code" = 200 ] || { echo "rig-run.sh: GET /runs/$id: HTTP $code: $(cat "$resp")" >&2; exit 2; }
  [ "$(jq -r .state "$resp")" = running ] || break
  sleep "$poll"
done
trap - INT TERM

mkdir -p "$out"
rec=$(cat "$resp")
printf '%s\n' "$rec" >"$out/record.json"
code=$(api GET "/runs/$id/junit.xml")
[ "$code" = 200 ] && cp "$resp" "$out/junit.xml"
jq -r '"rig-run.sh: \(.id): \(.outcome.outcome // .state) \(.summary)"' <<<"$rec"
jq -r '.cases[] | select(.verdict != "pass" and .verdict != "skip") | "  \(.id): \(.verdict): \(.message)"' <<<"$rec"
case "$(jq -r '.outcome.outcome // "stopped"' <<<"$rec")" in
  passed) exit 0 ;;
  failed | inconclusive) exit 1 ;;
  *) jq -r '"rig-run.sh: " + (.aborted // "the run ended early")' <<<"$rec" >&2; exit 2 ;;
esac
