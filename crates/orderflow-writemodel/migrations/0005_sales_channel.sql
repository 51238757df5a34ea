-- OrderPlaced v2 (issue #17): where the order was placed. NULL for every
-- order placed before, and when the client did not say: never guessed. The
-- address's ISO 3166-2 region lives inside `shipping_address` (JSONB) as the
-- optional key `region`, absent on older rows, so it needs no column.
-- Values as in orderflow_domain::SalesChannel and proto/events/v2.
ALTER TABLE orders
    ADD COLUMN sales_channel TEXT
        CHECK (sales_channel IN ('web', 'mobile_app', 'store', 'marketplace', 'phone'));
