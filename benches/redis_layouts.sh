#!/usr/bin/env bash
# Server-side cost of three ways to keep a session in Redis, with `redis-benchmark` (p50, one
# client, sequential) on a private server: the Redis hash `RedisStore` uses, one string
# patched in place by a Lua script, and one string that a save appends to (a log). Sessions
# of 1, 21 and 200 fields (a counter and strings of 100 bytes, as in `benches/sessions.rs`).
# Only the server's side: the client's parsing of the replies is not in these figures.
#
#   bash benches/redis_layouts.sh            # 20000 requests per line
#   N=5000 bash benches/redis_layouts.sh
#
# Needs redis-server, redis-cli, redis-benchmark and python3. See BENCHMARKS.md.
set -euo pipefail

N=${N:-20000}
DIR=$(mktemp -d)
trap 'redis-cli -p "$PORT" SHUTDOWN NOSAVE >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --dir "$DIR" >/dev/null
until redis-cli -p "$PORT" PING >/dev/null 2>&1; do sleep 0.1; done
cli() { redis-cli -p "$PORT" "$@"; }

# What RedisStore's save script does for one changed field.
HASH_SAVE=$(cli SCRIPT LOAD "
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], 3600000)
return 1")

# One string of entries `<name length>:<name><value length>:<value>`; the script finds the
# field's entry and replaces it.
PATCH=$(cli SCRIPT LOAD "
local blob = redis.call('GET', KEYS[1])
if not blob then return 0 end
local name, value = ARGV[1], ARGV[2]
local pos, n, from, to = 1, #blob, nil, nil
while pos <= n do
  local c = string.find(blob, ':', pos, true)
  local klen = tonumber(string.sub(blob, pos, c - 1))
  local c2 = string.find(blob, ':', c + 1 + klen, true)
  local vend = c2 + tonumber(string.sub(blob, c + 1 + klen, c2 - 1))
  if klen == #name and string.sub(blob, c + 1, c + klen) == name then
    from, to = pos, vend
    break
  end
  pos = vend + 1
end
local entry = #name .. ':' .. name .. #value .. ':' .. value
if from then
  blob = string.sub(blob, 1, from - 1) .. entry .. string.sub(blob, to + 1)
else
  blob = blob .. entry
end
redis.call('SET', KEYS[1], blob, 'PX', 3600000)
return 1")

# The same string as a log: a save appends the changed entries (a reader keeps the last
# entry of each name).
APPEND=$(cli SCRIPT LOAD "
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('APPEND', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], 3600000)
return 1")

VALUE=$(python3 -c 'import json; print(json.dumps("x" * 100))')
bench() {
    printf '%-4s %-40s ' "$1" "$2"
    shift 2
    redis-benchmark -p "$PORT" -c 1 -n "$N" -q "$@" | tr '\r' '\n' \
        | grep -o 'p50=[0-9.]* msec' | tail -1
}

for fields in 1 21 200; do
    python3 - "$fields" "$DIR" <<'EOF'
import json, sys
n, out = int(sys.argv[1]), sys.argv[2]
entries = [("counter", "7")] + [("f%d" % i, json.dumps("x" * 100)) for i in range(1, n)]
with open("%s/blob" % out, "wb") as f:
    f.write(b"".join(b"%d:%s%d:%s" % (len(k), k.encode(), len(v), v.encode()) for k, v in entries))
with open("%s/hash" % out, "w") as f:
    f.write("".join("%s\n%s\n" % kv for kv in entries))
EOF
    cli -x SET "string:$fields" <"$DIR/blob" >/dev/null
    cli -x SET "log:$fields" <"$DIR/blob" >/dev/null
    mapfile -t pairs <"$DIR/hash"
    cli HSET "hash:$fields" "${pairs[@]}" >/dev/null
    last=$([ "$fields" = 1 ] && echo counter || echo "f$((fields - 1))")

    bench "$fields" "read: HGETALL of the hash" HGETALL "hash:$fields"
    bench "$fields" "read: GET of the string" GET "string:$fields"
    bench "$fields" "save one field: hash script" EVALSHA "$HASH_SAVE" 1 "hash:$fields" counter 8
    bench "$fields" "save one field: patch, first entry" EVALSHA "$PATCH" 1 "string:$fields" counter 8
    bench "$fields" "save one field: patch, last entry" EVALSHA "$PATCH" 1 "string:$fields" "$last" "$VALUE"
    bench "$fields" "save one field: append to the log" EVALSHA "$APPEND" 1 "log:$fields" 7:counter1:8
    bench "$fields" "save the whole record: SET" SET "whole:$fields" "$(cat "$DIR/blob")"
done
