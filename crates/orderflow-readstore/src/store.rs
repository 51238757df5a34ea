//! [`ReadStore`]: what every job outside the event flow needs from a read
//! store, whichever store it is.
//!
//! Backfill, reconcile and repair, and the projector suite's checks, do the
//! same thing to each store: read what it holds for some orders, walk every
//! order it holds, write the write model's summary forward (never over a
//! newer version), replace an entry that still has the version seen, delete
//! orders the write model does not have, and compare what is stored with
//! the write model field by field. Each adapter implements this once
//! (`summary`, `search`, `status`), so those jobs are one code path over
//! `&dyn ReadStore` and a new store needs no change in them.
//!
//! How a batch of events changes a store is the other half of an adapter,
//! the runtime's [`orderflow_projector::Projection`].

use std::collections::HashMap;
use std::fmt::Debug;

use async_trait::async_trait;
use futures::stream::BoxStream;
use orderflow_readmodel::OrderSummary;
use serde_json::Value;
use uuid::Uuid;

/// What a read store holds for one order.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The version the store's guard compares the next write with (for the
    /// search index the engine's external version, not the document's).
    pub version: i64,
    /// The entry as the store keeps it, as JSON: the summary row
    /// (`to_jsonb`), the search document's source, the cache's hash.
    pub document: Value,
}

/// One read store, as backfill, reconcile, repair and the tests see it.
///
/// Every write is guarded by the order version, so each is safe beside a
/// live projector: [`backfill`](Self::backfill) only moves an order
/// forward, [`replace`](Self::replace) only overwrites the version seen.
#[async_trait]
pub trait ReadStore: Send + Sync + Debug {
    /// The read model's name in reports: `summary`, `search` or `status`.
    fn model(&self) -> &'static str;

    /// Makes every write so far visible to [`ids`](Self::ids) (the search
    /// index's refresh); nothing for stores that read their own writes.
    async fn refresh(&self) -> anyhow::Result<()> {
        Ok(())
    }

    /// What the store holds for `orders` (absent ones are missing).
    async fn read(&self, orders: &[Uuid]) -> anyhow::Result<HashMap<Uuid, Stored>>;

    /// Every order id the store holds, `page` (about) at a time. An id may
    /// come twice (Redis `SCAN`'s contract) and a page may be empty.
    fn ids(&self, page: usize) -> BoxStream<'_, anyhow::Result<Vec<Uuid>>>;

    /// Writes each summary unless the store already has that version or a
    /// newer one. Returns how many entries changed.
    async fn backfill(&self, summaries: &[OrderSummary]) -> anyhow::Result<u64>;

    /// Replaces each `(seen version, summary)` entry that still has the
    /// version seen, whatever the summary's own version (a repair may move
    /// an entry back to what the write model says, where the store allows
    /// it). Returns how many entries were replaced.
    async fn replace(&self, rows: &[(i64, &OrderSummary)]) -> anyhow::Result<u64>;

    /// Deletes the entries of `orders`. Returns how many were there.
    async fn remove(&self, orders: &[Uuid]) -> anyhow::Result<u64>;

    /// The fields in which `stored` differs from `want`, the write model's
    /// summary of the same order (empty: equal), among those this store
    /// keeps. The version is compared by the caller, through
    /// [`Stored::version`].
    fn differences(
        &self,
        stored: &Stored,
        want: &OrderSummary,
    ) -> anyhow::Result<Vec<&'static str>>;
}

/// The fields in which two summaries differ, every field compared (adding
/// a field to [`OrderSummary`] fails to compile here until it is compared).
pub fn differing_fields(stored: &OrderSummary, want: &OrderSummary) -> Vec<&'static str> {
    let OrderSummary {
        order_id,
        customer_id,
        customer_name,
        customer_email,
        status,
        currency,
        total_minor,
        line_count,
        item_count,
        lines,
        payment_reference,
        carrier,
        tracking_number,
        cancel_reason,
        refund_minor,
        sales_channel,
        shipping_address,
        placed_at,
        paid_at,
        shipped_at,
        delivered_at,
        cancelled_at,
        version,
        updated_at,
    } = stored;
    [
        ("order_id", *order_id == want.order_id),
        ("customer_id", *customer_id == want.customer_id),
        ("customer_name", *customer_name == want.customer_name),
        ("customer_email", *customer_email == want.customer_email),
        ("status", *status == want.status),
        ("currency", *currency == want.currency),
        ("total_minor", *total_minor == want.total_minor),
        ("line_count", *line_count == want.line_count),
        ("item_count", *item_count == want.item_count),
        ("lines", *lines == want.lines),
        (
            "payment_reference",
            *payment_reference == want.payment_reference,
        ),
        ("carrier", *carrier == want.carrier),
        ("tracking_number", *tracking_number == want.tracking_number),
        ("cancel_reason", *cancel_reason == want.cancel_reason),
        ("refund_minor", *refund_minor == want.refund_minor),
        ("sales_channel", *sales_channel == want.sales_channel),
        (
            "shipping_address",
            *shipping_address == want.shipping_address,
        ),
        ("placed_at", *placed_at == want.placed_at),
        ("paid_at", *paid_at == want.paid_at),
        ("shipped_at", *shipped_at == want.shipped_at),
        ("delivered_at", *delivered_at == want.delivered_at),
        ("cancelled_at", *cancelled_at == want.cancelled_at),
        ("version", *version == want.version),
        ("updated_at", *updated_at == want.updated_at),
    ]
    .into_iter()
    .filter_map(|(field, same)| (!same).then_some(field))
    .collect()
}

/// A stored document read back as a summary (the summary row, the search
/// document), or an error naming the order.
pub(crate) fn as_summary(stored: &Stored) -> anyhow::Result<OrderSummary> {
    use serde::Deserialize as _;
    OrderSummary::deserialize(&stored.document).map_err(|e| {
        anyhow::anyhow!(
            "stored document {} unreadable: {e}",
            stored.document["order_id"]
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> OrderSummary {
        serde_json::from_value(serde_json::json!({
            "order_id": Uuid::nil(), "customer_id": Uuid::nil(), "customer_name": "A",
            "customer_email": "a@example.com", "status": "placed", "currency": "EUR",
            "total_minor": 100, "line_count": 1, "item_count": 1, "lines": [],
            "payment_reference": null, "carrier": null, "tracking_number": null,
            "cancel_reason": null, "refund_minor": null,
            "placed_at": "2026-01-01T00:00:00Z", "paid_at": null, "shipped_at": null,
            "delivered_at": null, "cancelled_at": null, "version": 1,
            "updated_at": "2026-01-01T00:00:00Z"
        }))
        .expect("summary")
    }

    #[test]
    fn every_differing_field_is_named() {
        let want = summary();
        assert!(differing_fields(&want, &want).is_empty());
        let mut stored = want.clone();
        stored.customer_name = "B".into();
        stored.carrier = Some("DHL".into());
        stored.updated_at += time::Duration::seconds(1);
        assert_eq!(
            differing_fields(&stored, &want),
            ["customer_name", "carrier", "updated_at"]
        );
    }

    #[test]
    fn a_document_reads_back_as_its_summary() {
        let want = summary();
        let stored = Stored {
            version: 1,
            document: serde_json::to_value(&want).expect("json"),
        };
        assert_eq!(as_summary(&stored).expect("summary"), want);
        let broken = Stored {
            version: 1,
            document: serde_json::json!({"order_id": "x"}),
        };
        assert!(as_summary(&broken).is_err());
    }
}
