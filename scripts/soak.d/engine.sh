#!/usr/bin/env bash
# The soak's private engines: a Postgres cluster, a Redis, a Kafka broker and
# an OpenSearch node of its own on loopback ports, so every fault the soak
# injects (restarts, kill -9) hits only processes it started, never the
# shared stack other tests use.
#
#   engine.sh up|down|kill|pid ENGINE      ENGINE: postgres redis kafka opensearch
#
# up is idempotent and waits until the engine answers; down stops it cleanly;
# kill stops it hard (SIGKILL; Postgres: pg_ctl -m immediate, a crash and
# recovery on the next start). Settings come from the environment set by
# soak.py: ORDERFLOW_STACK_DIR (the soak's own stack dir), ORDERFLOW_JARS_DIR
# (the shared jar cache, read only), PG_PORT, REDIS_PORT, KAFKA_PORT,
# KAFKA_CONTROLLER_PORT, SOAK_KAFKA_ADVERTISED_PORT (the toxiproxy port in
# front of the broker: clients bootstrap and then connect through the proxy),
# OPENSEARCH_PORT, OPENSEARCH_TRANSPORT_PORT.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../stack.d" && pwd)"
: "${ORDERFLOW_STACK_DIR:?set by soak.py}"
# shellcheck source=../stack.d/common.sh
source "$here/common.sh"
for e in postgres kafka opensearch; do
  # shellcheck disable=SC1090
  source "$here/$e.sh"
done
STACK_WAIT_SECS="${STACK_WAIT_SECS:-120}"

# Kafka: the stack's broker, except that it advertises the proxy's port, so
# every client connection after the bootstrap goes through toxiproxy.
eval "$(declare -f _kafka_write_config | sed '1s/^_kafka_write_config/_stack_kafka_write_config/')"
_kafka_write_config() {
  _stack_kafka_write_config
  sed -i "s|^advertised.listeners=.*|advertised.listeners=PLAINTEXT://127.0.0.1:${SOAK_KAFKA_ADVERTISED_PORT:?}|" "$KAFKA_CONFIG"
}
# Readiness on the broker's own port (no JVM tool: cheap, and independent of
# a toxic on the proxy link).
_kafka_ready() { _kafka_ping; }

# Redis: with an append-only file fsynced on every write, so a restart (even
# kill -9) is a restart and not a cache loss (cache loss has its own system
# test, cache_loss.rs, and needs `orderctl backfill`); and with an ACL file,
# as a production Redis with users has, so the services' users that
# `orderctl setup` made (and saved with ACL SAVE) outlive the restart.
REDIS_DIR="$STACK_DIR/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
_redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ]; }
soak_redis_up() {
  _redis_ready && return 0
  mkdir -p "$REDIS_DIR/logs"
  touch "$REDIS_DIR/users.acl"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
    --pidfile "$REDIS_PID" --logfile "$REDIS_DIR/logs/redis.log" --dir "$REDIS_DIR" \
    --save "" --appendonly yes --appendfsync always --protected-mode yes --aclfile "$REDIS_DIR/users.acl"
  wait_until "$STACK_WAIT_SECS" _redis_ready || fail redis "$REDIS_DIR/logs/redis.log" "no PONG"
}
soak_redis_down() {
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" SHUTDOWN >/dev/null 2>&1 || true
  wait_until 20 bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT) 2>/dev/null" || true
  # One left by an earlier run (on another port) goes by its pid file.
  _kill_pidfile "$REDIS_PID"
}
soak_redis_kill() {
  [ -f "$REDIS_PID" ] && kill -KILL "$(cat "$REDIS_PID")" 2>/dev/null || true
  wait_until 20 bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT) 2>/dev/null" || true
  rm -f "$REDIS_PID"
}

_kill_pidfile() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill -KILL "$pid" 2>/dev/null || true
  wait_until 30 bash -c "! kill -0 $pid" || true
  rm -f "$pidfile"
}

action=${1:?usage: engine.sh up|down|kill|pid ENGINE}
engine=${2:?usage: engine.sh up|down|kill|pid ENGINE}
case "$action:$engine" in
  up:postgres) postgres_up ;;
  down:postgres) postgres_down ;;
  kill:postgres)
    as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
    ;;
  pid:postgres) head -n1 "$PG_DATA/postmaster.pid" ;;
  up:redis) soak_redis_up ;;
  down:redis) soak_redis_down ;;
  kill:redis) soak_redis_kill ;;
  pid:redis) cat "$REDIS_PID" ;;
  up:kafka) kafka_up ;;
  down:kafka) kafka_down ;;
  kill:kafka) _kill_pidfile "$KAFKA_PIDFILE" ;;
  pid:kafka) cat "$KAFKA_PIDFILE" ;;
  up:opensearch) opensearch_up ;;
  down:opensearch) opensearch_down ;;
  kill:opensearch) _kill_pidfile "$OPENSEARCH_PIDFILE" ;;
  pid:opensearch) cat "$OPENSEARCH_PIDFILE" ;;
  *) echo "engine.sh: unknown $action $engine" >&2; exit 2 ;;
esac
