#!/usr/bin/env bash
# End-to-end checks of the spillway binary: the acceptance commands of the engine issue, and
# clear errors (message + exit code) for bad files and bad arguments.
# Usage: cli_test.sh SPILLWAY_BINARY SHARED_DIR TMP_DIR
set -uo pipefail
bin=$1
shared=$2
tmp=$3
mkdir -p "$tmp"
models=$shared/models
passed=0
failed=0

check() {  # check NAME CONDITION-STATUS
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $1"
  fi
}

# expect_error NAME EXIT_CODE STDERR_SUBSTRING -- ARGS...
expect_error() {
  local name=$1 code=$2 needle=$3
  shift 4
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local ok=0
  [ "$rc" -eq "$code" ] || { echo "  $name: exit $rc, expected $code"; ok=1; }
  grep -qF -- "$needle" "$tmp/err" || { echo "  $name: stderr lacks '$needle':"; cat "$tmp/err"; ok=1; }
  [ "$(wc -l <"$tmp/err")" -le 2 ] || { echo "  $name: error is not one line:"; cat "$tmp/err"; ok=1; }
  [ ! -s "$tmp/out" ] || { echo "  $name: unexpected stdout"; ok=1; }
  check "$name" $ok
}

if [ ! -f "$models/stories260K.gguf" ]; then
  if [ -n "${CI:-}" ]; then echo "missing $models"; echo "0 passed, 1 failed"; exit 1; fi
  echo "skipping: no shared models at $models"
  exit 0
fi

# The acceptance commands: exact reproduction of the llama2.c reference output.
"$bin" generate --model "$models/stories260K.gguf" --prompt "" --max-tokens 256 --temperature 0 \
  2>/dev/null | cmp -s - "$models/stories260K_greedy256.txt"
check "gguf greedy 256 equals reference" $?
"$bin" generate --model "$models/stories260K.bin" --tokenizer "$models/tok512.bin" --prompt "" \
  --max-tokens 256 --temperature 0 2>/dev/null | cmp -s - "$models/stories260K_greedy256.txt"
check "llama2.c greedy 256 equals reference" $?
out=$("$bin" generate --model "$models/stories260K.gguf" --prompt "Lily" -n 10 -t 0 --raw 2>/dev/null)
[ -n "$out" ] && [ "$(printf '%s' "$out" | wc -l)" -le 1 ]
check "stdout holds only the continuation" $?
[ "$("$bin" generate -m "$models/stories260K.gguf" -p "Lily" -n 30 -t 0.9 -s 5 2>/dev/null)" = \
  "$("$bin" generate -m "$models/stories260K.gguf" -p "Lily" -n 30 -t 0.9 -s 5 2>/dev/null)" ]
check "same seed, same output" $?

# Bad files.
head -c 5000 "$models/stories260K.gguf" >"$tmp/truncated.gguf"
expect_error "truncated gguf" 1 "truncated" -- generate -m "$tmp/truncated.gguf" -p x
head -c 100000 /dev/urandom >"$tmp/random.gguf"
printf 'GGUF' | dd of="$tmp/random.gguf" conv=notrunc status=none
expect_error "random bytes after magic" 1 "random.gguf" -- generate -m "$tmp/random.gguf" -p x
expect_error "missing file" 1 "No such file" -- generate -m "$tmp/nope.gguf" -p x
expect_error "vocab-only gguf" 1 "no tensors" -- generate -m "$models/ggml-vocab-llama-spm.gguf" -p x
expect_error "llama2.c without tokenizer" 1 "--tokenizer" -- generate -m "$models/stories260K.bin" -p x

# Bad arguments.
long=$(printf 'Lily %.0s' $(seq 1 700))
expect_error "prompt longer than the context" 2 "context holds 512" -- \
  generate -m "$models/stories260K.gguf" -p "$long" -c 512
expect_error "negative temperature" 2 "temperature" -- \
  generate -m "$models/stories260K.gguf" -p x -t -1
expect_error "zero max tokens" 2 "max-tokens" -- generate -m "$models/stories260K.gguf" -p x -n 0
expect_error "missing prompt" 2 "prompt" -- generate -m "$models/stories260K.gguf"
expect_error "unknown option" 2 "--bogus" -- generate -m "$models/stories260K.gguf" -p x --bogus
expect_error "unknown KV cache type" 2 "f16, f32, q8_0" -- \
  generate -m "$models/stories260K.gguf" -p x --kv-type q4_0
expect_error "q8_0 KV cache on 8-wide heads" 1 "multiple of 32" -- \
  generate -m "$models/stories260K.gguf" -p x --kv-type q8_0
expect_error "mkmodel unknown shape" 2 "unknown shape" -- \
  mkmodel --shape gpt-9 --vocab "$models/ggml-vocab-llama-spm.gguf" -o "$tmp/x.gguf"
expect_error "mkmodel unknown type" 2 "unknown weight type" -- \
  mkmodel --shape tiny --type q3_k --vocab "$models/ggml-vocab-llama-spm.gguf" -o "$tmp/x.gguf"
expect_error "bench bad concurrency" 2 "concurrency" -- \
  bench -m "$models/stories260K.gguf" --concurrency 1,x

# mkmodel writes a loadable model; bench reports exactly the documented JSON keys.
"$bin" mkmodel --shape tiny --type q4_0 --vocab "$models/ggml-vocab-llama-spm.gguf" \
  -o "$tmp/tiny.gguf" 2>/dev/null && "$bin" generate -m "$tmp/tiny.gguf" -p "Hi" -n 4 -t 0 >/dev/null 2>&1
check "mkmodel output generates" $?
json=$("$bin" bench -m "$models/stories260K.gguf" --threads 1 --prompt-tokens 16 --gen-tokens 4 \
  --concurrency 1,2 --repetitions 1 --json 2>/dev/null)
python3 - "$json" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
assert sorted(r) == sorted(["pp_tps", "tg_tps", "concurrency", "weight_bytes_per_token",
                            "read_bandwidth_gbs", "tg_fraction_of_limit", "peak_rss_bytes"]), r
assert sorted(r["concurrency"]) == ["1", "2"], r
assert r["pp_tps"] > 0 and r["tg_tps"] > 0 and r["read_bandwidth_gbs"] > 0
PY
check "bench --json keys" $?

# Trace replay against the serving core: every replayed request completes.
json=$("$bin" bench -m "$models/stories260K.gguf" --threads 1 \
  --trace "$shared/traces/AzureLLMInferenceTrace_conv.csv" --rate 20 --duration 3 --max-requests 30 \
  --length-scale 0.1 --shared-prefix 32 --json 2>/dev/null)
python3 - "$json" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
assert r["requests"] >= 5 and r["completed"] == r["requests"] and r["rejected"] == 0, r
for k in ("ttft_s", "tpot_s", "e2e_s"):
    assert 0 < r[k]["p50"] <= r[k]["p90"] <= r[k]["p99"], r
assert 0 < r["prefix_hit_rate"] < 1 and r["output_tps"] > 0, r
PY
check "bench --trace replays every request" $?
expect_error "bench --trace without times needs --rate" 2 "--rate" -- \
  bench -m "$models/stories260K.gguf" --trace "$shared/traces/sharegpt_8k_filtered_stats_llama2_tokenizer.csv"
expect_error "bench --trace missing file" 1 "cannot open" -- \
  bench -m "$models/stories260K.gguf" --trace "$tmp/nope.csv"

# spillway up: gateway + control plane + two local replicas; a chat request through the gateway,
# then Ctrl-C stops everything with no process left behind.
"$bin" up --port 0 --api-key sk-cli-test --model "$models/stories260K.gguf" >"$tmp/up.out" 2>"$tmp/up.err" &
up_pid=$!
for _ in $(seq 120); do grep -q "^API key: sk-cli-test" "$tmp/up.out" 2>/dev/null && break; sleep 0.5; done
url=$(sed -n 's|^Spillway is up: \(http://[^ ]*\)/v1.*|\1|p' "$tmp/up.out")
reply=$(curl -s -m 60 "$url/v1/chat/completions" -H "Authorization: Bearer sk-cli-test" \
  -d '{"model":"stories260K","messages":[{"role":"user","content":"Hi"}],"max_tokens":8}')
echo "$reply" | grep -q '"completion_tokens":8'
check "up: chat through the gateway" $?
replicas=$(curl -s -m 10 "$url/v1/fleet/replicas")
echo "$replicas" | grep -q '"provider":"oci"' && echo "$replicas" | grep -q '"provider":"azure"'
check "up: replicas in both providers" $?
pids=$(echo "$replicas" | grep -o '"pid":[0-9]*' | cut -d: -f2)
[ "$(echo "$pids" | wc -w)" -eq 2 ] && kill -0 $pids
check "up: two live replica processes" $?
kill -INT "$up_pid"
wait "$up_pid"
check "up: exits 0 on SIGINT" $?
left=0
for p in $pids; do kill -0 "$p" 2>/dev/null && left=1; done
check "up: no replica process left" $left

# spillway sim: a short run on the example planning fleet, reproducible JSON; bad flags exit 2.
examples=$(cd "$(dirname "$0")/../../examples" && pwd)
sim_args=(sim --fleet "$examples/fleet-64k.toml" --duration 20 --seed 3 --json
  --workload "trace:$shared/traces/AzureLLMInferenceTrace_conv.csv")
json=$("$bin" "${sim_args[@]}" 2>/dev/null)
python3 - "$json" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
assert r["requests"] > 10 and r["finished"] > 0, r
assert r["requests"] == r["finished"] + r["rejected_quota"] + r["rejected_queue"] + \
    r["failed_lost"] + r["failed_unservable"] + r["unfinished"], r
assert 0 < r["ttft"]["p50_s"] <= r["ttft"]["p90_s"] <= r["ttft"]["p99_s"], r
assert [p["name"] for p in r["providers"]] == ["azure", "oci"], r
assert "wall_s" not in r, r
PY
check "sim --json" $?
[ "$json" = "$("$bin" "${sim_args[@]}" 2>/dev/null)" ]
check "sim: same seed, same bytes" $?
expect_error "sim bad event" 2 "--event" -- \
  sim --fleet "$examples/fleet-64k.toml" --workload mau:1000 --event flood:x@1
expect_error "sim unknown flag" 2 "--bogus" -- \
  sim --fleet "$examples/fleet-64k.toml" --workload mau:1000 --bogus

# spillway control + spillway gateway --control as two processes: a chat through the gateway,
# drain needs the admin key, no key in any command line, and SIGINT stops both (exit 0) with
# no replica left behind.
split_fleet=$(cd "$(dirname "$0")/../../examples" && pwd)/fleet.toml
split_alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat")" != Z ]; }
unset SPILLWAY_INTERNAL_KEY SPILLWAY_ADMIN_KEY
expect_error "control without an internal key" 2 "--internal-key-file" -- \
  control --config "$split_fleet" --model "$models/stories260K.gguf" --port 0
expect_error "gateway without --control or --upstream" 2 "--control" -- \
  gateway --config "$split_fleet" --port 0
expect_error "gateway --busy-poll-us beyond its bound" 2 "--busy-poll-us" -- \
  gateway --config "$split_fleet" --upstream http://127.0.0.1:1 --port 0 --busy-poll-us 2000
# A pool whose KV cache type the model cannot take is refused before anything starts.
sed 's/^\( *\)kv_cache_mib = \(.*\)$/\1kv_cache_mib = \2\n\1kv_type = "q8_0"/' "$split_fleet" \
  >"$tmp/q8-fleet.toml"
expect_error "up: a q8_0 pool for a model with 8-wide heads" 2 "which model 'stories' cannot use" \
  -- up --config "$tmp/q8-fleet.toml" --model "$models/stories260K.gguf" --port 0
expect_error "control: a q8_0 pool for a model with 8-wide heads" 2 "multiple of 32" -- \
  control --config "$tmp/q8-fleet.toml" --model "$models/stories260K.gguf" --port 0 \
  --internal-key-file "$tmp/q8-internal.key"
rm -f "$tmp/internal.key"
printf '# operators\nsk-spw-CliTestAdminKey0000000000000001\n' >"$tmp/admin.key"
chmod 600 "$tmp/admin.key"
"$bin" control --config "$split_fleet" --model "$models/stories260K.gguf" --port 0 \
  --internal-key-file "$tmp/internal.key" --admin-key-file "$tmp/admin.key" \
  >"$tmp/control.out" 2>"$tmp/control.err" &
control_pid=$!
for _ in $(seq 240); do grep -q "^Spillway control plane is up" "$tmp/control.out" && break; sleep 0.5; done
control_url=$(sed -n 's|^Spillway control plane is up: \(http://[^ ]*\) .*|\1|p' "$tmp/control.out")
[ -n "$control_url" ] && [ "$(stat -c %a "$tmp/internal.key")" = 600 ]
check "control: up, internal key file created with mode 0600" $?
replica_pids=$(pgrep -P "$control_pid")
[ "$(echo $replica_pids | wc -w)" -eq 2 ] &&
  [ "$(grep -lFf "$tmp/internal.key" /proc/[0-9]*/environ 2>/dev/null | wc -l)" -eq 2 ]
check "control: two replica processes, the key in their environment" $?
! grep -qFf "$tmp/internal.key" /proc/[0-9]*/cmdline 2>/dev/null && \
  ! grep -qFf "$tmp/internal.key" "$tmp/control.err"
check "control: the internal key is in no command line and no log" $?
"$bin" gateway --config "$split_fleet" --control "$control_url" --port 0 --poll-interval-ms 200 \
  --internal-key-file "$tmp/internal.key" --admin-key-file "$tmp/admin.key" \
  >"$tmp/gateway.out" 2>"$tmp/gateway.err" &
gateway_pid=$!
for _ in $(seq 120); do grep -q "^Spillway gateway is up" "$tmp/gateway.out" && break; sleep 0.5; done
gateway_url=$(sed -n 's|^Spillway gateway is up: \(http://[^ ]*\)/v1.*|\1|p' "$tmp/gateway.out")
for _ in $(seq 120); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -m 5 "$gateway_url/ready")" = 200 ] && break; sleep 0.5
done
reply=$(curl -s -m 60 "$gateway_url/v1/chat/completions" \
  -H "Authorization: Bearer sk-spw-DemoKeyForTheExampleFleetOnly000" \
  -d '{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":8}')
echo "$reply" | grep -q '"completion_tokens":8'
check "gateway --control: chat through the gateway" $?
replicas=$(curl -s -m 10 "$gateway_url/v1/fleet/replicas")
echo "$replicas" | grep -q '"provider":"oci"' && echo "$replicas" | grep -q '"provider":"azure"'
check "gateway --control: the fleet copy lists both providers" $?
drain=$control_url/v1/fleet/pools/oci-local/drain
[ "$(curl -s -o /dev/null -w '%{http_code}' -m 10 -X POST "$drain")" = 401 ] &&
  [ "$(curl -s -o /dev/null -w '%{http_code}' -m 10 -X POST "$drain" \
    -H "Authorization: Bearer sk-spw-WrongKey")" = 401 ]
check "control: drain without the admin key is 401" $?
curl -s -m 10 -X POST "$drain" -H "Authorization: Bearer sk-spw-CliTestAdminKey0000000000000001" |
  grep -q '"drained":true'
check "control: drain with the admin key" $?
[ "$(curl -s -o /dev/null -w '%{http_code}' -m 10 -X POST \
  "$control_url/v1/fleet/pools/oci-local/undrain" \
  -H "Authorization: Bearer sk-spw-CliTestAdminKey0000000000000001")" = 200 ]
check "control: undrain with the admin key" $?
kill -INT "$gateway_pid"
wait "$gateway_pid"
check "gateway: exits 0 on SIGINT" $?
kill -INT "$control_pid"
wait "$control_pid"
check "control: exits 0 on SIGINT" $?
left=0
for p in $replica_pids; do split_alive "$p" && left=1; done
# Every replica, even one launched a moment before the signal, holds the key in its environment.
for f in $(grep -lFf "$tmp/internal.key" /proc/[0-9]*/environ 2>/dev/null); do
  p=${f#/proc/}; split_alive "${p%/environ}" && left=1
done
check "control: no replica process left" $left

# spillway key: the stored form is sha256$<salt>$<SHA-256(salt bytes || key)> of the key given.
"$bin" key >"$tmp/key.out"
new_key=$(awk '/^key:/ {print $2}' "$tmp/key.out")
[[ "$new_key" =~ ^sk-spw-[0-9A-Za-z]{32}$ ]] && grep -qE '^stored: sha256\$[0-9a-f]{32}\$[0-9a-f]{64}$' "$tmp/key.out"
check "key: a new key and its stored form" $?
stored=$(printf '%s\n' "$new_key" | "$bin" key --stdin | awk '{print $2}')
salt=$(echo "$stored" | cut -d'$' -f2)
digest=$(echo "$stored" | cut -d'$' -f3)
recomputed=$( { printf "$(printf '%s' "$salt" | sed 's/../\\x&/g')"; printf '%s' "$new_key"; } | sha256sum | cut -c1-64)
[ -n "$digest" ] && [ "$digest" = "$recomputed" ]
check "key --stdin: the digest is SHA-256 of salt and key" $?
expect_error "key --stdin without a key" 2 "no key" -- key --stdin </dev/null

"$bin" --version | grep -q "^spillway "
check "--version" $?
"$bin" --help | grep -q "generate"
check "--help lists generate" $?

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
