#!/usr/bin/env bash
# Run a command with a private moto server (DynamoDB, S3, SQS, Secrets Manager) on a free
# loopback port, exported to the command as CALLSYNC_TEST_MOTO_URL; the server stops when
# the command ends, however it ends.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
port="${MOTO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
log="$(mktemp -t moto.XXXXXX.log)"
"$here/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  if curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then cat "$log" >&2; echo "moto did not start" >&2; exit 1; fi
  sleep 0.1
done
export CALLSYNC_TEST_MOTO_URL="http://127.0.0.1:$port"
"$@"
