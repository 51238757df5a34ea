-- The inbox is read by (consumer, event_id) only: the dedup check, the
-- summary's read of it and `orderctl trace` (which takes the order's event
-- ids from the outbox). The index by order served only the trace, and it
-- cost every projector a second index entry on every event recorded.
DROP INDEX IF EXISTS inbox_aggregate_idx;
