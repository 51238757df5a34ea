# Jaeger: the trace backend the tracing test reads traces back from, built
# once from the Go module proxy into a per-user cache (like Maven's ~/.m2),
# so only the first run on a machine pays for the build.

JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"
JAEGER_TOOLS="${ORDERFLOW_TOOLS:-$HOME/.cache/orderflow/tools}/jaeger-$JAEGER_VERSION"
JAEGER_BIN="$JAEGER_TOOLS/jaeger"
JAEGER_DIR="$STACK_DIR/jaeger"
JAEGER_LOG="$JAEGER_DIR/logs/jaeger.log"
JAEGER_PID="$JAEGER_DIR/jaeger.pid"
export JAEGER_OTLP_PORT JAEGER_QUERY_PORT JAEGER_QUERY_GRPC_PORT JAEGER_HEALTH_PORT

jaeger_ready() {
  curl -fsS "http://127.0.0.1:$JAEGER_QUERY_PORT/api/services" >/dev/null 2>&1
}

jaeger_status() {
  if jaeger_ready; then
    echo "jaeger: up (OTLP http://127.0.0.1:$JAEGER_OTLP_PORT, UI http://127.0.0.1:$JAEGER_QUERY_PORT)"
  else
    echo "jaeger: down"
    return 1
  fi
}

jaeger_build() {
  [ -x "$JAEGER_BIN" ] && return 0
  need_cmd go golang-go
  log "jaeger: building $JAEGER_VERSION from the Go module proxy (first run only, a few minutes)"
  mkdir -p "$JAEGER_TOOLS" "$JAEGER_DIR/logs"
  local mod
  mod="$(mktemp -d)"
  (
    cd "$mod"
    go mod init orderflow-jaeger >/dev/null 2>&1
    go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
    go build -o "$JAEGER_BIN.partial" github.com/jaegertracing/jaeger/cmd/jaeger
  ) >"$JAEGER_DIR/logs/build.log" 2>&1 ||
    fail jaeger "$JAEGER_DIR/logs/build.log" "building jaeger $JAEGER_VERSION failed"
  mv "$JAEGER_BIN.partial" "$JAEGER_BIN"
  rm -rf "$mod"
}

jaeger_up() {
  if jaeger_ready; then
    log "jaeger already up"
    return 0
  fi
  if port_open "$JAEGER_OTLP_PORT" || port_open "$JAEGER_QUERY_PORT"; then
    fail jaeger "$JAEGER_LOG" "port $JAEGER_OTLP_PORT or $JAEGER_QUERY_PORT is taken; set JAEGER_OTLP_PORT / JAEGER_QUERY_PORT"
  fi
  jaeger_build
  mkdir -p "$JAEGER_DIR/logs"
  log "jaeger: starting (OTLP 127.0.0.1:$JAEGER_OTLP_PORT, UI 127.0.0.1:$JAEGER_QUERY_PORT)"
  nohup "$JAEGER_BIN" --config "$REPO_ROOT/scripts/stack.d/jaeger/config.yaml" \
    >"$JAEGER_LOG" 2>&1 &
  echo $! >"$JAEGER_PID"
  wait_until "$STACK_WAIT_SECS" jaeger_ready ||
    fail jaeger "$JAEGER_LOG" "no answer from http://127.0.0.1:$JAEGER_QUERY_PORT/api/services"
}

jaeger_down() {
  stop_pidfile jaeger "$JAEGER_PID"
}
