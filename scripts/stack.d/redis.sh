# Redis: a throwaway cache here, so no persistence (the status cache is a
# read model and can always be rebuilt).

REDIS_DIR="$STACK_DIR/redis"
REDIS_LOG="$REDIS_DIR/logs/redis.log"
REDIS_PID="$REDIS_DIR/redis.pid"

redis_ready() {
  [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" PING 2>/dev/null)" = "PONG" ]
}

redis_status() {
  if redis_ready; then
    echo "redis: up (127.0.0.1:$REDIS_PORT)"
  else
    echo "redis: down"
    return 1
  fi
}

redis_up() {
  need_cmd redis-server redis-server
  need_cmd redis-cli redis-tools
  if redis_ready; then
    log "redis already up"
    return 0
  fi
  if port_open "$REDIS_PORT"; then
    fail redis "$REDIS_LOG" "port $REDIS_PORT is taken by another process; set REDIS_PORT to a free port"
  fi
  mkdir -p "$REDIS_DIR/logs"
  log "redis: starting on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
    --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" --dir "$REDIS_DIR" \
    --save "" --appendonly no --protected-mode yes ||
    fail redis "$REDIS_LOG" "redis-server did not start"
  wait_until "$STACK_WAIT_SECS" redis_ready ||
    fail redis "$REDIS_LOG" "no PONG from 127.0.0.1:$REDIS_PORT"
}

redis_down() {
  if redis_ready; then
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
  fi
  stop_pidfile redis "$REDIS_PID"
}
