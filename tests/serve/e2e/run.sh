#!/usr/bin/env bash
# End-to-end tests of `spillway serve` with the official `openai` npm SDK as the client.
# Usage: run.sh SPILLWAY_BINARY SHARED_DIR WORK_DIR
#
# Installs the pinned SDK (package.json + package-lock.json of this folder) into WORK_DIR with
# `npm ci` (reused while WORK_DIR's node_modules matches the lock file), starts the servers
# below on free ports, runs the *.test.mjs files with node's own test runner, then stops every
# server with SIGTERM (`main` with SIGINT) and checks that each exits 0 and logged exactly one
# line when it became ready. The servers are killed on any exit path.
#
#   main      stories260K, API key, small body limit      chat, completions, errors
#   queue     stories260K, --max-running 1 --max-waiting 1 429 when the queue is full, cancel
#   vocab     random-weight tiny model with the Llama SPM vocabulary (spillway mkmodel):
#             prompt token counts against llama.cpp's tokenizer test vectors
#   shutdown  stories260K; shutdown.test.mjs sends it SIGTERM mid-stream (streams finish)
#   cancel    the same with --shutdown-timeout-ms 0 (streams are cancelled)
#   limits    stories260K, small connection, URL and header limits and timeouts (limits.test.mjs)
#   unready   stories260K, --unready-grace-ms 10000; unready.test.mjs sends it SIGTERM (503)
#
# Without the shared model (or without node/npm, or when npm cannot install) the test is
# skipped, except under CI=true, where that is a failure.
set -uo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 SPILLWAY_BINARY SHARED_DIR WORK_DIR" >&2
  exit 2
fi
bin=$(realpath "$1")
shared=$(realpath -m "$2")
work=$(realpath -m "$3")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
models=$shared/models

skip_or_fail() {  # skip_or_fail REASON
  if [ -n "${CI:-}" ]; then
    echo "FAIL: $1"
    exit 1
  fi
  echo "skipping: $1"
  exit 0
}

[ -f "$models/stories260K.gguf" ] || skip_or_fail "no shared models at $models"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  skip_or_fail "node and npm are needed"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || skip_or_fail "node >= 20 is needed (found $(node --version))"

mkdir -p "$work"

# --- The pinned SDK, installed outside the source tree. ---
stamp=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$work/.npm-stamp" 2>/dev/null)" != "$stamp" ] ||
  [ ! -d "$work/node_modules/openai" ]; then
  rm -rf "$work/node_modules" "$work/.npm-stamp"
  cp "$here/package.json" "$here/package-lock.json" "$work/"
  echo "installing the pinned openai SDK into $work (npm ci)"
  if ! (cd "$work" && npm ci --no-audit --no-fund --omit=dev --loglevel=error \
    >"$work/npm.log" 2>&1); then
    cat "$work/npm.log"
    skip_or_fail "npm ci failed (network?)"
  fi
  echo "$stamp" >"$work/.npm-stamp"
fi
# The tests run from WORK_DIR so that `import 'openai'` resolves to its node_modules.
rm -rf "$work/suite"
mkdir -p "$work/suite/lib"
cp "$here"/*.test.mjs "$work/suite/"
cp "$here"/lib/*.mjs "$work/suite/lib/"

# --- Servers. ---
pids=()
names=()
node_pid=""
cleanup() {
  if [ -n "$node_pid" ]; then  # The test runner stops its per-file processes on SIGTERM.
    kill -TERM "$node_pid" 2>/dev/null
    for _ in $(seq 1 30); do
      kill -0 "$node_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$node_pid" 2>/dev/null
  fi
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null
  done
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_server() {  # start_server NAME ARGS...: starts `spillway serve` on a free port
  local name=$1
  shift
  "$bin" serve --host 127.0.0.1 --port 0 --threads 1 --kv-cache-mib 16 "$@" \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
}

# The base URL (…/v1) a server logged when ready; waits up to 120 s (sanitizer builds are slow).
server_url() {  # server_url INDEX
  local i=$1 url=""
  for _ in $(seq 1 1200); do
    url=$(sed -n 's/.* ready url=\(http[^ ]*\).*/\1/p' "$work/${names[$i]}.log" | head -n 1)
    [ -n "$url" ] && break
    kill -0 "${pids[$i]}" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$url" ]; then
    echo "FAIL: server '${names[$i]}' did not become ready:" >&2
    cat "$work/${names[$i]}.log" >&2
    return 1
  fi
  echo "$url"
}

api_key="e2e-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
rm -f "$work/vocab-tiny.gguf"
if ! "$bin" mkmodel --shape tiny --type q8_0 --vocab "$models/ggml-vocab-llama-spm.gguf" \
  --out "$work/vocab-tiny.gguf" >"$work/mkmodel.log" 2>&1; then
  cat "$work/mkmodel.log"
  echo "FAIL: spillway mkmodel"
  exit 1
fi

start_server main --model "$models/stories260K.gguf" --api-key "$api_key" \
  --max-body-bytes 262144
start_server queue --model "$models/stories260K.gguf" --max-running 1 --max-waiting 1
# Its KV cache is sized in positions (rounded up to whole 16-position blocks; wins over MiB).
start_server vocab --model "$work/vocab-tiny.gguf" --model-name vocab-tiny --kv-cache-tokens 1000
start_server shutdown --model "$models/stories260K.gguf" --shutdown-timeout-ms 60000
start_server cancel --model "$models/stories260K.gguf" --shutdown-timeout-ms 0
start_server limits --model "$models/stories260K.gguf" --max-connections 4 --max-url-bytes 1024 \
  --max-header-bytes 4096 --header-timeout-ms 2000 --idle-timeout-ms 3000
start_server unready --model "$models/stories260K.gguf" --unready-grace-ms 10000

main_url=$(server_url 0) || exit 1
queue_url=$(server_url 1) || exit 1
vocab_url=$(server_url 2) || exit 1
if ! grep -q ' ready .*kv_cache_tokens=1008 ' "$work/vocab.log"; then
  echo "FAIL: --kv-cache-tokens 1000 did not give a 1008-position cache:" >&2
  cat "$work/vocab.log" >&2
  exit 1
fi
shutdown_url=$(server_url 3) || exit 1
cancel_url=$(server_url 4) || exit 1
limits_url=$(server_url 5) || exit 1
unready_url=$(server_url 6) || exit 1

# --- The tests. ---
cd "$work/suite" || exit 1
SPW_MAIN_URL=$main_url SPW_API_KEY=$api_key SPW_QUEUE_URL=$queue_url \
  SPW_VOCAB_URL=$vocab_url SPW_SHUTDOWN_URL=$shutdown_url SPW_SHUTDOWN_PID=${pids[3]} \
  SPW_CANCEL_URL=$cancel_url SPW_CANCEL_PID=${pids[4]} SPW_LIMITS_URL=$limits_url \
  SPW_UNREADY_URL=$unready_url SPW_UNREADY_PID=${pids[6]} \
  SPW_SHARED_DIR=$shared \
  node --test --test-reporter=spec --test-concurrency=3 --test-timeout=180000 ./*.test.mjs &
node_pid=$!
wait "$node_pid"
tests_rc=$?
node_pid=""

# --- Graceful exit: SIGTERM (SIGINT for `main`) → exit 0 for every server; "clean=true" (every
# request finished in time) except for `cancel`, whose stream the shutdown cancelled. ---
failed=0
for i in "${!pids[@]}"; do
  pid=${pids[$i]}
  signal=TERM
  [ "${names[$i]}" = main ] && signal=INT
  kill -"$signal" "$pid" 2>/dev/null
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: server '${names[$i]}' still running 60 s after SIGTERM"
    failed=1
    continue
  fi
  wait "$pid"
  rc=$?
  clean=true
  [ "${names[$i]}" = cancel ] && clean=false
  if [ "$rc" -ne 0 ] || ! grep -q "stopped clean=$clean" "$work/${names[$i]}.log"; then
    echo "FAIL: server '${names[$i]}' exited $rc after SIG$signal; its log ends:"
    tail -n 20 "$work/${names[$i]}.log"
    failed=1
  fi
  # Starting up logs one line, the ready line (servers signalled by the tests got SIGTERM).
  log=$work/${names[$i]}.log
  if ! head -n 1 "$log" | grep -q ' ready url=' || [ "$(grep -c ' ready url=' "$log")" -ne 1 ] ||
    { [ "$signal" = INT ] && ! grep -q 'shutting down signal=SIGINT' "$log"; }; then
    echo "FAIL: server '${names[$i]}': expected one ready line first (and the signal logged):"
    head -n 5 "$log"
    failed=1
  fi
done
pids=()

if [ "$tests_rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
  echo "serve.openai_sdk: FAILED (node tests exit $tests_rc; server logs in $work)"
  exit 1
fi
echo "serve.openai_sdk: all passed"
