# Sourced by scripts/bench: the sections that run on the seeded dataset
# (dataset.sh): reads, joins against the summary table; checkout under
# reporting load; trace latency; reconcile and rebuild rates. Each writes
# plain result lines into $work for scripts/bench.d/report.py.

# now: seconds since the epoch, to the nanosecond.
now() { date +%s.%N; }

# pgb OUT LABEL URL CONC LIMIT SCRIPT... : one pgbench run, appending
# "LABEL CONC tps p50_ms p99_ms failed n" to OUT. LIMIT is `-T secs`,
# `-t count` (per client), plus `-R rate` for a fixed arrival rate.
pgb() {
  local out="$1" label="$2" url="$3" conc="$4" limit="$5" logs="$work/pgb-$RANDOM$RANDOM"
  shift 5
  mkdir -p "$logs"
  # pgbench runs in the log directory: scripts by absolute path.
  local args=() a
  for a in "$@"; do
    case "$a" in
      /*) args+=("$a") ;;
      *.sql | *.sql@*) args+=("$PWD/$a") ;;
      *) args+=("$a") ;;
    esac
  done
  # shellcheck disable=SC2086 # LIMIT is several words on purpose
  (cd "$logs" && pgbench -n -M prepared -c "$conc" -j "$((conc < 2 ? 1 : 2))" $limit -l \
    -D ids="$(psql -At "$url" -c 'SELECT count(*) FROM bench_ids' 2>/dev/null || echo 1)" \
    "${args[@]}" "$url" >summary 2>&1) || {
    cat "$logs/summary" >&2
    exit 1
  }
  echo "$label $conc $(python3 scripts/bench.d/pgbench_stats.py "$logs")" >>"$out"
}

# best_join CHOSEN: a pgbench script of the level-0 endpoint's own
# statement (the write model's readback, one statement, the orders chosen
# first and each joined by its keys) over the orders CHOSEN selects.
best_join() {
  echo '\set k random(1, :ids)'
  echo "WITH chosen AS ($1)"
  sed 's/--.*$//' crates/orderflow-writemodel/src/sql/summary_of_chosen.sql
  echo ';'
}

# naive_join [LINE...]: a pgbench script of bench/pgbench/reads/naive_join.sql
# ended by LINEs (for one order of bench_ids); without any, the dashboard
# page's ending.
naive_join() {
  if [ $# -gt 0 ]; then
    echo '\set k random(1, :ids)'
    cat bench/pgbench/reads/naive_join.sql
    printf '%s\n' "$@"
  else
    cat bench/pgbench/reads/naive_join.sql
    printf '%s\n' 'GROUP BY o.id, p.order_id, s.order_id' 'ORDER BY o.placed_at DESC, o.id DESC' 'LIMIT 50;'
  fi
}

# wrk_get OUT LABEL CONC PATH [IDS]: GETs against the query service.
wrk_get() {
  local line
  line="$(wrk -t"$((${3} < 2 ? 1 : 2))" -c"$3" -d"${read_secs}s" -s bench/wrk/reads.lua "http://127.0.0.1:$query_port" -- "$4" ${5:+"$5"} | grep '^WRK')"
  python3 - "$1" "$2" "$3" "$line" <<'PY'
import sys
out, label, conc, line = sys.argv[1:]
f = dict(kv.split("=") for kv in line.split()[1:])
n = int(f["requests"])
with open(out, "a") as o:
    o.write(f"{label} {conc} {n / float(f['seconds']):.2f} {int(f['p50_us']) / 1000:.2f} "
            f"{int(f['p99_us']) / 1000:.2f} {f['errors']} {n}\n")
PY
}

# Section: joins on the write model against the summary table.
bench_reads() {
  local out="$work/reads.txt"
  : >"$out"
  naive_join >"$work/naive_by_id.sql" \
    'WHERE o.id = (SELECT id FROM bench_ids WHERE n = :k)' 'GROUP BY o.id, p.order_id, s.order_id;'
  best_join 'SELECT id FROM bench_ids WHERE n = :k' >"$work/best_by_id.sql"
  best_join 'SELECT id FROM orders ORDER BY placed_at DESC, id DESC LIMIT 50' | sed 1d >"$work/best_dashboard.sql"
  naive_join >"$work/naive_dashboard.sql"
  local conc
  for conc in 1 32; do
    log "reads at concurrency $conc: by id (naive join, best join, summary)"
    pgb "$out" id_naive "$ds_write" "$conc" "-T $read_secs" -f "$work/naive_by_id.sql"
    pgb "$out" id_best "$ds_write" "$conc" "-T $read_secs" -f "$work/best_by_id.sql"
    pgb "$out" id_summary "$ds_read" "$conc" "-T $read_secs" -f bench/pgbench/reads/summary_by_id.sql
    log "reads at concurrency $conc: dashboard page (naive join, best join, summary)"
    # The naive page aggregates every order: a count of runs, not a duration.
    pgb "$out" dash_naive "$ds_write" "$conc" "-t $([ "$conc" = 1 ] && echo "$naive_runs" || echo 1)" \
      -f "$work/naive_dashboard.sql"
    pgb "$out" dash_best "$ds_write" "$conc" "-T $read_secs" -f "$work/best_dashboard.sql"
    pgb "$out" dash_summary "$ds_read" "$conc" "-T $read_secs" -f bench/pgbench/reads/summary_dashboard.sql
  done

  log "reads over HTTP: the release order-query on the dataset (level-0 endpoints on)"
  psql -At "$ds_write" -c "SELECT id FROM bench_ids ORDER BY n" >"$work/ids.txt"
  query_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  env "${ds_env[@]}" "$bin/order-query" \
    --http-addr "127.0.0.1:$query_port" --level0 true --auth-disabled true \
    --read-db-max-connections 32 --write-db-max-connections 32 \
    --rate-per-second 1000000 --rate-burst 1000000 >"$work/order-query.log" 2>&1 &
  query_pid=$!
  local deadline=$((SECONDS + 60))
  until curl -fs "http://127.0.0.1:$query_port/readyz" >/dev/null; do
    if ! kill -0 "$query_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "[bench] ERROR: order-query did not become ready; log:" >&2
      tail -n 20 "$work/order-query.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  for conc in 1 32; do
    wrk_get "$out" http_id_summary "$conc" /orders/ "$work/ids.txt"
    wrk_get "$out" http_id_best "$conc" /level0/orders/ "$work/ids.txt"
    wrk_get "$out" http_dash_summary "$conc" "/orders?limit=50"
    wrk_get "$out" http_dash_best "$conc" "/level0/orders?limit=50"
  done
  kill -TERM "$query_pid" && wait "$query_pid" 2>/dev/null || true
  query_pid=""
}

# Section: PlaceOrder at a fixed arrival rate, alone and beside reports.
bench_checkout() {
  local out="$work/checkout.txt" clone="bench_report_checkout_$$" reports
  : >"$out"
  log "checkout: a copy of the $ds_n-order write database for PlaceOrder to write into"
  psql -q "$pg/postgres" -c "CREATE DATABASE $clone TEMPLATE bench_report_w$ds_n"
  checkout_db="$clone"
  psql -q -v ON_ERROR_STOP=1 "$pg/$clone" -f bench/pgbench/setup.sql
  naive_join >"$work/naive_dashboard.sql"
  local phase url
  for phase in alone write read; do
    reports=""
    case "$phase" in
      write) url="$pg/$clone" reports="-f $work/naive_dashboard.sql@1 -f bench/pgbench/reads/report_write.sql@1" ;;
      read) url="$ds_read" reports="-f bench/pgbench/reads/summary_dashboard.sql@1 -f bench/pgbench/reads/report_read.sql@1" ;;
    esac
    log "checkout: PlaceOrder at $checkout_rate/s for $checkout_secs s, reports: $phase"
    local rpid=""
    if [ -n "$reports" ]; then
      # shellcheck disable=SC2086
      pgb "$work/reports.txt" "reports_$phase" "$url" 4 "-T $((checkout_secs + 4)) -R $report_rate" $reports &
      rpid=$!
      sleep 2
    fi
    pgb "$out" "checkout_$phase" "$pg/$clone" 16 "-T $checkout_secs -R $checkout_rate" \
      -f bench/pgbench/place_order_statements.sql
    [ -z "$rpid" ] || wait "$rpid"
  done
  [ -f "$work/reports.txt" ] && cat "$work/reports.txt" >>"$out"
  psql -q "$pg/postgres" -c "DROP DATABASE $clone WITH (FORCE)"
  checkout_db=""
}

# timed OUT LABEL ORDERS CMD...: runs CMD, appending "LABEL ORDERS secs rc".
timed() {
  local out="$1" label="$2" orders="$3" t0 rc=0
  shift 3
  t0="$(now)"
  "$@" >"$work/$label.out" 2>"$work/$label.err" || rc=$?
  echo "$label $orders $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$t0" "$(now)") $rc" >>"$out"
}

# Section: orderctl trace as a process, against a process baseline.
# Needs the release relay and projectors too: they run on the dataset while
# the orders to trace are placed through the pipeline.
bench_trace() {
  log "trace: $trace_ids orders placed through the pipeline and $trace_ids seeded ones, each traced beside psql's primary-key lookup"
  mkdir -p "$work/trace-logs"
  env "${ds_env[@]}" python3 scripts/bench.d/trace.py "$bin" "$ds_write" "$trace_ids" "$work/trace-logs" >"$work/trace.txt"
}

# Section: reconcile and rebuild rates on the dataset, beside raw copies.
bench_rates() {
  local out="$work/rates.txt" m search="http://127.0.0.1:$OPENSEARCH_PORT"
  : >"$out"
  log "rates: the write model's readback alone (what reconcile compares with)"
  # Every summary built and sent to a client, as reconcile receives them
  # (count(*) over the statement would let Postgres skip building them).
  {
    echo "COPY (WITH chosen AS (SELECT id FROM orders)"
    sed 's/--.*$//' crates/orderflow-writemodel/src/sql/summary_of_chosen.sql
    echo ") TO STDOUT;"
  } >"$work/readback_all.sql"
  timed "$out" raw_readback "$ds_n" bash -c 'psql -q -v ON_ERROR_STOP=1 "$1" -f "$2" >/dev/null' _ "$ds_write" "$work/readback_all.sql"
  for m in summary search status; do
    log "rates: orderctl reconcile --only $m"
    timed "$out" "reconcile_$m" "$ds_n" env "${ds_env[@]}" "$bin/orderctl" reconcile --only "$m" --json
  done
  log "rates: raw copies inside each store (INSERT … SELECT; _reindex)"
  psql -q "$ds_read" -c "DROP TABLE IF EXISTS bench_raw_copy" -c "CREATE TABLE bench_raw_copy (LIKE order_summary INCLUDING ALL)"
  timed "$out" raw_summary_copy "$ds_n" psql -q "$ds_read" -c "INSERT INTO bench_raw_copy SELECT * FROM order_summary"
  psql -q "$ds_read" -c "DROP TABLE bench_raw_copy"
  curl -fsS -X DELETE "$search/bench_report_${ds_n}_rawcopy" >/dev/null 2>&1 || true
  timed "$out" raw_search_reindex "$ds_n" curl -fsS -X POST -H 'Content-Type: application/json' \
    "$search/_reindex?wait_for_completion=true&refresh=true" \
    -d "{\"source\": {\"index\": \"bench_report_$ds_n\"}, \"dest\": {\"index\": \"bench_report_${ds_n}_rawcopy\"}}"
  curl -fsS -X DELETE "$search/bench_report_${ds_n}_rawcopy" >/dev/null 2>&1 || true
  for m in summary status search; do
    log "rates: orderctl rebuild $m --from write-model"
    timed "$out" "rebuild_$m" "$ds_n" env "${ds_env[@]}" "$bin/orderctl" rebuild "$m" --from write-model --json
    # The copy alone, as the rebuild reports it (its other steps are outside it).
    python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print("fill_%s %d %.3f 0" % (sys.argv[2], r["filled"], r["seconds"]))' \
      "$work/rebuild_$m.out" "$m" >>"$out" || true
  done
}
