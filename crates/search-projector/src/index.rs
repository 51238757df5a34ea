//! The `orders` index: an alias over a versioned index, so a rebuild can
//! fill `orders_v2` and swap the alias without downtime.

use elasticsearch::Elasticsearch;
use elasticsearch::indices::{IndicesCreateParts, IndicesExistsAliasParts};
use serde_json::{Value, json};

/// The explicit mapping. `dynamic: strict` makes a document with an
/// unexpected field fail loudly instead of growing the mapping.
pub fn mapping() -> Value {
    let text_and_keyword =
        json!({"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 256}}});
    json!({
        "dynamic": "strict",
        "properties": {
            "order_id": {"type": "keyword"},
            "customer_id": {"type": "keyword"},
            "customer_name": text_and_keyword,
            "customer_email": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
            "status": {"type": "keyword"},
            "currency": {"type": "keyword"},
            "total_minor": {"type": "long"},
            "line_count": {"type": "integer"},
            "item_count": {"type": "long"},
            "lines": {"type": "object", "enabled": false},
            "product_names": text_and_keyword,
            "skus": {"type": "keyword", "normalizer": "lowercase"},
            "payment_reference": {"type": "keyword"},
            "carrier": {"type": "keyword"},
            "tracking_number": {"type": "keyword", "normalizer": "lowercase"},
            "cancel_reason": {"type": "text"},
            "refund_minor": {"type": "long"},
            "placed_at": {"type": "date"},
            "paid_at": {"type": "date"},
            "shipped_at": {"type": "date"},
            "delivered_at": {"type": "date"},
            "cancelled_at": {"type": "date"},
            "version": {"type": "long"},
            "updated_at": {"type": "date"}
        }
    })
}

/// Creates `<alias>_v1` behind `alias` when the alias does not exist yet.
pub async fn ensure(client: &Elasticsearch, alias: &str) -> anyhow::Result<()> {
    let exists = client
        .indices()
        .exists_alias(IndicesExistsAliasParts::Name(&[alias]))
        .send()
        .await?
        .status_code()
        .is_success();
    if exists {
        return Ok(());
    }
    let index = format!("{alias}_v1");
    let response = client
        .indices()
        .create(IndicesCreateParts::Index(&index))
        .body(json!({
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": 0,
                "refresh_interval": "1s",
                // SKUs and tracking numbers match whatever case is typed.
                "analysis": {"normalizer": {"lowercase": {"type": "custom", "filter": ["lowercase"]}}}
            },
            "mappings": mapping(),
            "aliases": {alias: {"is_write_index": true}}
        }))
        .send()
        .await?;
    let status = response.status_code();
    let body: Value = response.json().await.unwrap_or_default();
    // Another instance may have created it first.
    let raced = body["error"]["type"] == "resource_already_exists_exception";
    anyhow::ensure!(
        status.is_success() || raced,
        "creating index {index}: {status} {body}"
    );
    tracing::info!(index, alias, "search_projector.index created");
    Ok(())
}
