-- Newest-first reads of the write model (the level-0 comparison endpoint and
-- the strong-consistency fallback's neighbours).
CREATE INDEX orders_placed_idx ON orders (placed_at DESC, id DESC);
