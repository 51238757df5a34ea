# Shared helpers for scripts/stack. Sourced, never run directly.
#
# Every engine file (postgres.sh, redis.sh, kafka.sh, opensearch.sh) defines
# <engine>_up, <engine>_down and <engine>_status on top of these helpers, so
# each engine reports readiness and failure the same way.

# Root of the repository and of all stack state (data, logs, cached jars).
REPO_ROOT="${REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
STACK_DIR="${ORDERFLOW_STACK_DIR:-$REPO_ROOT/.stack}"
# Cached Maven jars; a second stack (say, a test's private broker) can share them.
JARS_DIR="${ORDERFLOW_JARS_DIR:-$STACK_DIR/jars}"

PG_PORT="${PG_PORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
OPENSEARCH_PORT="${OPENSEARCH_PORT:-9200}"
OPENSEARCH_TRANSPORT_PORT="${OPENSEARCH_TRANSPORT_PORT:-9300}"
JAEGER_OTLP_PORT="${JAEGER_OTLP_PORT:-4318}"
JAEGER_QUERY_PORT="${JAEGER_QUERY_PORT:-16686}"
JAEGER_QUERY_GRPC_PORT="${JAEGER_QUERY_GRPC_PORT:-16685}"
JAEGER_HEALTH_PORT="${JAEGER_HEALTH_PORT:-13133}"

# Seconds each engine may take to become ready before we give up on it.
STACK_WAIT_SECS="${STACK_WAIT_SECS:-180}"

log() { printf '[stack] %s\n' "$*" >&2; }

# fail ENGINE LOGFILE MESSAGE...: report a failed engine with its log path,
# show the log's tail, and exit non-zero.
fail() {
  local engine=$1 logfile=$2
  shift 2
  printf '[stack] ERROR: %s: %s\n' "$engine" "$*" >&2
  printf '[stack]   log: %s\n' "$logfile" >&2
  if [ -f "$logfile" ]; then
    printf '[stack]   last lines of the log:\n' >&2
    tail -n 20 "$logfile" | sed 's/^/[stack]     /' >&2
  fi
  exit 1
}

# wait_until SECONDS CMD...: poll CMD every half second until it succeeds.
wait_until() {
  local secs=$1
  shift
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.5
  done
}

# pid_alive PIDFILE: true when the file names a running process.
pid_alive() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# stop_pidfile ENGINE PIDFILE: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pidfile() {
  local engine=$1 pidfile=$2 pid
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_until 30 bash -c "! kill -0 $pid"; then
    log "$engine did not stop in 30 s; killing pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# need_cmd CMD DEBIAN_PACKAGE: install the package when CMD is missing.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2 (for $1)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "[stack] ERROR: $1 is missing and we are not root; run: sudo apt-get install -y $2" >&2
    exit 1
  fi
  if [ -z "${_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
    _APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
}
