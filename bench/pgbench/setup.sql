-- A write database for the PlaceOrder benchmarks (`scripts/bench`), on top
-- of the write model's migrations (`orderctl migrate`): one customer, 200
-- products with practically endless stock, and helpers that derive ids from
-- pgbench's random numbers. Ids follow one pattern so the scripts can name
-- a product by its number: product n is 00000000-0000-7000-8000-<n in hex>.

CREATE FUNCTION bench_product(n int) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid $$;

-- A UUID v7 (time-ordered, as the service makes order and event ids) from
-- the transaction's start time and a random number: stable within one
-- transaction, so every statement of a PlaceOrder names the same order.
CREATE FUNCTION bench_v7(r bigint) RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT (lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0')
          || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid
  FROM (SELECT lpad(to_hex(r), 18, '0') AS h) AS x
$$;

INSERT INTO customers (id, name, email)
VALUES ('00000000-0000-7000-8000-00000000ffff', 'Bench Customer', 'bench@example.com');

INSERT INTO products (id, sku, name, unit_price_minor, currency)
SELECT bench_product(n), 'BENCH-' || n, 'Bench product ' || n, 100 + n, 'EUR'
FROM generate_series(0, 199) AS n;

INSERT INTO stock (product_id, available)
SELECT bench_product(n), 1000000000 FROM generate_series(0, 199) AS n;

-- An OrderPlaced envelope as the service writes it (about 1 KB): text,
-- stored as `json` like the service's (write migration 0007), with the
-- event and order ids filled in by format() in each PlaceOrder.
CREATE TABLE bench_envelope (envelope text NOT NULL);
INSERT INTO bench_envelope VALUES (regexp_replace('{
  "event_id": "%1$s", "event_type": "OrderPlaced",
  "schema_version": 1, "aggregate_type": "order",
  "aggregate_id": "%2$s", "aggregate_version": 1,
  "occurred_at": "2026-12-01T10:00:00Z",
  "correlation_id": "019ad0a4-7b1e-7c3a-9d2f-3e4b5c6d7e8f",
  "causation_id": "019ad0a4-7b1e-7c3a-9d2f-3e4b5c6d7e90",
  "payload": {
    "order_id": "00000000-0000-7000-8000-000000000000",
    "customer": {"customer_id": "00000000-0000-7000-8000-00000000ffff",
                 "name": "Bench Customer", "email": "bench@example.com"},
    "lines": [
      {"product_id": "00000000-0000-7000-8000-000000000001", "sku": "BENCH-1",
       "product_name": "Bench product 1", "unit_price_minor": 101, "quantity": 1, "line_total_minor": 101},
      {"product_id": "00000000-0000-7000-8000-000000000002", "sku": "BENCH-2",
       "product_name": "Bench product 2", "unit_price_minor": 102, "quantity": 1, "line_total_minor": 102},
      {"product_id": "00000000-0000-7000-8000-000000000003", "sku": "BENCH-3",
       "product_name": "Bench product 3", "unit_price_minor": 103, "quantity": 1, "line_total_minor": 103}
    ],
    "currency": "EUR", "total_minor": 306,
    "shipping_address": {"line1": "1 Bench Street", "city": "Leeds",
                         "postal_code": "LS1 1AA", "country": "GB"},
    "placed_at": "2026-12-01T10:00:00Z"
  }
}', '\n\s*', '', 'g'));
