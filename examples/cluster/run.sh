#!/usr/bin/env bash
# Starts a cluster on loopback: redis-server, the legacy SSE backend and
# three Caddy instances sharing its stream through Redis. Ctrl-C stops
# everything it started.
#
#	examples/cluster/run.sh
#
# Ports come from the environment: PORTS (default "8081 8082 8083"),
# ADMIN_PORTS ("2021 2022 2023"), UPSTREAM_PORT (3000).
set -euo pipefail

read -r -a ports <<<"${PORTS:-8081 8082 8083}"
read -r -a admins <<<"${ADMIN_PORTS:-2021 2022 2023}"
upstream_port=${UPSTREAM_PORT:-3000}
if [[ ${#ports[@]} -ne 3 || ${#admins[@]} -ne 3 ]]; then
	echo "run.sh: PORTS and ADMIN_PORTS need three ports each" >&2
	exit 2
fi
command -v redis-server >/dev/null || {
	echo "run.sh: redis-server is not on PATH (Debian: apt-get install redis-server)" >&2
	exit 1
}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sse-cluster.XXXXXX")
pids=()

# stop ends every process this script started, by its PID, newest first,
# then removes the temporary directory.
stop() {
	trap - EXIT INT TERM
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
	echo "stopped"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "building into $tmp ..."
(cd "$root" && go build -o "$tmp/caddy" ./cmd/caddy && go build -o "$tmp/legacy-sse" ./examples/legacy/cmd/legacy-sse)

sock=$tmp/redis.sock
redis-server --save "" --appendonly no --dir "$tmp" --port 0 \
	--unixsocket "$sock" --unixsocketperm 700 --logfile "$tmp/redis.log" &
pids+=($!)

"$tmp/legacy-sse" -listen "127.0.0.1:$upstream_port" -token "" -interval 1s -pause -1s >"$tmp/upstream.log" 2>&1 &
pids+=($!)

for _ in $(seq 50); do
	[[ -S $sock ]] && break
	sleep 0.1
done
[[ -S $sock ]] || {
	echo "run.sh: redis-server did not start; see below" >&2
	cat "$tmp/redis.log" >&2
	exit 1
}

for i in 0 1 2; do
	mkdir -p "$tmp/caddy$i"
	PORT=${ports[i]} ADMIN=127.0.0.1:${admins[i]} UPSTREAM=127.0.0.1:$upstream_port REDIS=$sock \
		XDG_DATA_HOME=$tmp/caddy$i XDG_CONFIG_HOME=$tmp/caddy$i \
		"$tmp/caddy" run --config "$here/Caddyfile" --adapter caddyfile >"$tmp/caddy$i.log" 2>&1 &
	pids+=($!)
done

for i in 0 1 2; do
	for _ in $(seq 100); do
		curl -fso /dev/null "http://127.0.0.1:${admins[i]}/config/" && break
		sleep 0.1
	done
	curl -fso /dev/null "http://127.0.0.1:${admins[i]}/config/" || {
		echo "run.sh: instance $((i + 1)) did not start:" >&2
		cat "$tmp/caddy$i.log" >&2
		exit 1
	}
done

cat <<MSG

A cluster of three Caddy instances on one redis-server ($sock),
in front of the legacy backend on http://127.0.0.1:$upstream_port/events:

  instance 1: http://localhost:${ports[0]}/events   admin 127.0.0.1:${admins[0]}
  instance 2: http://localhost:${ports[1]}/events   admin 127.0.0.1:${admins[1]}
  instance 3: http://localhost:${ports[2]}/events   admin 127.0.0.1:${admins[2]}

Watch the stream on any instance (all three show the same ids; like
EventSource, ask for text/event-stream, or the request is not shared):
  curl -N -H 'Accept: text/event-stream' http://localhost:${ports[0]}/events
Resume on another instance where you left off:
  curl -N -H 'Accept: text/event-stream' -H 'Last-Event-ID: 5' http://localhost:${ports[1]}/events
Which instance reads the upstream (role holder; the others are followers):
  curl -s localhost:${admins[0]}/sse_proxy/streams
Kill the holder (kill -9 <its PID, below>) and watch another take over.

PIDs: redis-server ${pids[0]}, legacy-sse ${pids[1]}, caddy ${pids[2]} ${pids[3]} ${pids[4]}
Logs in $tmp. Ctrl-C stops everything.
MSG

wait
