# Sourced by scripts/bench: the seeded dataset the reads, checkout, trace,
# reconcile and rebuild sections run on, made by `orderctl seed` (straight
# into the write database, then backfilled into all three read models) on
# the topology `orderctl setup` makes. Seeding a million orders takes long
# on this machine, so the dataset is kept between runs, named by its size
# (databases bench_report_w<N> / bench_report_r<N>, search alias
# bench_report_<N>, Redis prefix bench-report-<N>:, topic
# bench-report-<N>.events), and made again only when it is not complete.
# `BENCH_RESEED=1` forces a new one.

# dataset_env N: the settings every orderctl/order-query call on the dataset uses.
dataset_env() {
  ds_n="$1"
  ds_write="$pg/bench_report_w$1"
  ds_read="$pg/bench_report_r$1"
  ds_env=(WRITE_DATABASE_URL="$ds_write" READ_DATABASE_URL="$ds_read"
    SEARCH_ALIAS="bench_report_$1" REDIS_KEY_PREFIX="bench-report-$1:"
    EVENTS_TOPIC="bench-report-$1.events" ROLE_PREFIX=bench_report_
    SUMMARY_GROUP="bench-report-$1-summary" SEARCH_GROUP="bench-report-$1-search"
    STATUS_GROUP="bench-report-$1-status" RUST_LOG=warn)
}

# dataset_complete: the seed finished (its record is there) and nothing
# else has written to the dataset since.
dataset_complete() {
  [ "${BENCH_RESEED:-}" != 1 ] || return 1
  local seeded orders summary
  seeded="$(psql -At "$ds_write" -c "SELECT orders FROM bench_seeded" 2>/dev/null)" || return 1
  orders="$(psql -At "$ds_write" -c "SELECT count(*) FROM orders")" || return 1
  summary="$(psql -At "$ds_read" -c "SELECT count(*) FROM order_summary")" || return 1
  [ "$seeded" = "$ds_n" ] && [ "$orders" = "$ds_n" ] && [ "$summary" = "$ds_n" ]
}

# ensure_dataset N: seeds N orders unless a complete dataset of N is there;
# leaves the seed's own timings in the write database's bench_seeded.
ensure_dataset() {
  dataset_env "$1"
  if dataset_complete; then
    log "dataset of $ds_n orders is there (seeded $(psql -At "$ds_write" -c "SELECT at FROM bench_seeded"))"
    # Kept across commits: brought to this commit's topology (migrations,
    # topics, roles) as an upgrade in place would be.
    env "${ds_env[@]}" "$bin/orderctl" setup >"$work/setup.txt"
    # The local Redis keeps nothing across a stack restart: a kept dataset
    # whose status cache went with it is backfilled again (else the traces
    # are not "visible everywhere" and the status reconcile finds drift).
    if [ -z "$(redis-cli -p "$REDIS_PORT" --scan --pattern "bench-report-$ds_n:*" | head -n 1)" ]; then
      log "its status cache is gone (Redis restarted): orderctl backfill --only status"
      env "${ds_env[@]}" "$bin/orderctl" backfill --only status >/dev/null
    fi
    return
  fi
  log "seeding $ds_n orders (orderctl seed, then its backfill of all three read models)"
  local db
  for db in "bench_report_w$ds_n" "bench_report_r$ds_n"; do
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  done
  curl -fsS -X DELETE "http://127.0.0.1:$OPENSEARCH_PORT/bench_report_${ds_n}*" >/dev/null 2>&1 || true
  redis-cli -p "$REDIS_PORT" --scan --pattern "bench-report-$ds_n:*" | xargs -r -n 1000 redis-cli -p "$REDIS_PORT" UNLINK >/dev/null
  env "${ds_env[@]}" "$bin/orderctl" setup >"$work/setup.txt"
  env "${ds_env[@]}" "$bin/orderctl" seed --orders "$ds_n" --tag bench --json >"$work/seed.json"
  python3 - "$work/seed.json" "$ds_write" <<'PY'
import json, subprocess, sys
s = json.load(open(sys.argv[1]))
assert s["backfill"]["complete"], s
sql = (f"CREATE TABLE bench_seeded AS SELECT {s['seed']['orders']}::bigint AS orders, "
       f"{s['seed']['lines']}::bigint AS lines, {s['seed']['seconds']}::float8 AS seed_secs, "
       f"{s['backfill']['seconds']}::float8 AS backfill_secs, now() AS at")
subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", sys.argv[2], "-c", sql], check=True)
PY
  # The same random orders on both sides, for the by-id reads and the traces.
  psql -q -v ON_ERROR_STOP=1 "$ds_write" \
    -c "CREATE TABLE bench_ids AS SELECT (row_number() OVER ())::int AS n, id FROM (SELECT id FROM orders ORDER BY random() LIMIT 10000) x" \
    -c "ALTER TABLE bench_ids ADD PRIMARY KEY (n)" -c "VACUUM ANALYZE orders, order_lines, payments, shipments, bench_ids"
  psql -q -v ON_ERROR_STOP=1 "$ds_read" -c "CREATE TABLE bench_ids (n int PRIMARY KEY, id uuid NOT NULL)"
  psql -At "$ds_write" -c "COPY bench_ids TO STDOUT" | psql -q -v ON_ERROR_STOP=1 "$ds_read" -c "COPY bench_ids FROM STDIN"
  psql -q "$ds_read" -c "VACUUM ANALYZE order_summary, bench_ids"
}
