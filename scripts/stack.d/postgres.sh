# Postgres: a cluster owned by the project (initdb into $STACK_DIR), so the
# system cluster is never touched and the port is ours to choose.
#
# Local auth is `trust` on loopback only: nothing but this machine can reach
# it, and no password has to live in the repo.

PG_DIR="$STACK_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/logs/postgres.log"
PG_ROLE="${PG_ROLE:-orderflow}"

# pg_bin: directory of the newest installed server binaries.
pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/postgres" ] && echo "$dir"
}

# as_pg CMD...: run as the `postgres` OS user when we are root (initdb and the
# server refuse to run as root), as ourselves otherwise.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_ready() {
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atqc 'SELECT 1' 2>/dev/null | grep -qx 1
}

postgres_status() {
  if pg_ready; then
    echo "postgres: up (127.0.0.1:$PG_PORT, data $PG_DATA)"
  else
    echo "postgres: down"
    return 1
  fi
}

postgres_up() {
  if pg_ready; then
    log "postgres already up"
    postgres_bootstrap
    return 0
  fi
  if [ -z "$(pg_bin)" ]; then
    need_cmd /usr/lib/postgresql/x/bin/postgres postgresql
  fi
  need_cmd psql postgresql-client
  local bin
  bin=$(pg_bin) || fail postgres "$PG_LOG" "no Postgres server binaries under /usr/lib/postgresql"

  mkdir -p "$PG_DIR/logs" "$PG_DIR/run"
  [ "$(id -u)" -eq 0 ] && chown -R postgres: "$PG_DIR"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "postgres: initdb in $PG_DATA"
    as_pg "$bin/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$PG_DIR/logs/initdb.log" 2>&1 ||
      fail postgres "$PG_DIR/logs/initdb.log" "initdb failed"
    cat >>"$PG_DATA/postgresql.conf" <<CONF

# orderflow local stack
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR/run'
max_connections = 400
shared_buffers = 256MB
wal_level = logical
log_min_duration_statement = 1000
CONF
  fi
  if port_open "$PG_PORT"; then
    fail postgres "$PG_LOG" "port $PG_PORT is taken by another process; set PG_PORT to a free port"
  fi
  log "postgres: starting on 127.0.0.1:$PG_PORT"
  as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -o "-p $PG_PORT" -w -t "$STACK_WAIT_SECS" start >/dev/null ||
    fail postgres "$PG_LOG" "the server did not start"
  wait_until "$STACK_WAIT_SECS" pg_ready ||
    fail postgres "$PG_LOG" "no answer to a query on 127.0.0.1:$PG_PORT"
  postgres_bootstrap
}

# The application role and the write and read databases (idempotent).
postgres_bootstrap() {
  local sql="psql -h 127.0.0.1 -p $PG_PORT -U postgres -d postgres -v ON_ERROR_STOP=1 -Atq"
  $sql -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
        CREATE ROLE $PG_ROLE LOGIN CREATEDB CREATEROLE;
      END IF;
    END \$\$;" >/dev/null || fail postgres "$PG_LOG" "creating role $PG_ROLE failed"
  local db
  for db in orderflow_write orderflow_read; do
    if [ -z "$($sql -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
      $sql -c "CREATE DATABASE $db OWNER $PG_ROLE" >/dev/null ||
        fail postgres "$PG_LOG" "creating database $db failed"
    fi
  done
}

postgres_down() {
  local bin
  bin=$(pg_bin) || return 0
  if [ -f "$PG_DATA/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  fi
}
