-- OrderPlaced v2 (issue #17): the sales channel and the structured shipping
-- address ({lines, city, postal_code, region?, country}, as in
-- proto/events/v2/OrderPlaced) on the order summary.
--
-- NULL sales_channel: not known (the client did not say, or the order was
-- placed before v2); never guessed. NULL shipping_address: a row projected
-- before this migration; `orderctl reconcile --repair` (or a rebuild) fills
-- it from the write model, which always had the address.
ALTER TABLE order_summary
    ADD COLUMN sales_channel    TEXT,
    ADD COLUMN shipping_address JSONB;
