//! The `orders` index: an alias over a versioned index, so a rebuild can
//! fill `orders_v2` and swap the alias without downtime.

use elasticsearch::indices::{
    IndicesCreateParts, IndicesDeleteParts, IndicesExistsAliasParts, IndicesExistsParts,
    IndicesGetAliasParts, IndicesGetMappingParts, IndicesGetSettingsParts, IndicesPutMappingParts,
    IndicesPutSettingsParts, IndicesRefreshParts,
};
use elasticsearch::{CountParts, Elasticsearch, SearchParts};
use serde_json::{Value, json};

/// How soon a write becomes searchable (a rebuild turns it off while it
/// fills an index, then back to this).
pub const REFRESH_INTERVAL: &str = "1s";

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
            "sales_channel": {"type": "keyword"},
            // OrderPlaced v2's address; `region` (ISO 3166-2) and `country`
            // are exact filters, the street lines full text.
            "shipping_address": {
                "type": "object",
                "properties": {
                    "lines": {"type": "text"},
                    "city": text_and_keyword,
                    "postal_code": {"type": "keyword", "normalizer": "lowercase"},
                    "region": {"type": "keyword"},
                    "country": {"type": "keyword"}
                }
            },
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
        // An index made by an earlier release lacks the fields added since
        // (OrderPlaced v2's): adding fields to a mapping is allowed in
        // place, so the strict mapping does not refuse the new documents.
        return put_mapping(client, alias).await;
    }
    let index = format!("{alias}_v1");
    create(client, &index, Some(alias)).await?;
    tracing::info!(index, alias, "search_projector.index created");
    Ok(())
}

/// Adds the fields of [`mapping`] that `index` (or the indices behind an
/// alias) lacks. Idempotent; a field whose type changed is refused by the
/// engine and needs a rebuild into a new index instead.
pub async fn put_mapping(client: &Elasticsearch, index: &str) -> anyhow::Result<()> {
    let response = client
        .indices()
        .put_mapping(IndicesPutMappingParts::Index(&[index]))
        .body(mapping())
        .send()
        .await?;
    succeeded(response, &format!("updating the mapping of {index}")).await
}

/// `Ok` for a 2xx answer, else an error naming `what`, the status and body.
async fn succeeded(
    response: elasticsearch::http::response::Response,
    what: &str,
) -> anyhow::Result<()> {
    let status = response.status_code();
    let body: Value = response.json().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{what}: {status} {body}");
    Ok(())
}

/// Creates `index` with the settings and mapping, optionally as `alias`'s
/// write index. An index that already exists (another instance was first)
/// is fine.
pub async fn create(
    client: &Elasticsearch,
    index: &str,
    alias: Option<&str>,
) -> anyhow::Result<()> {
    let mut body = json!({
        "settings": {
            "number_of_shards": 1,
            "number_of_replicas": 0,
            "refresh_interval": REFRESH_INTERVAL,
            // SKUs and tracking numbers match whatever case is typed.
            "analysis": {"normalizer": {"lowercase": {"type": "custom", "filter": ["lowercase"]}}}
        },
        "mappings": mapping()
    });
    if let Some(alias) = alias {
        body["aliases"] = json!({alias: {"is_write_index": true}});
    }
    let response = client
        .indices()
        .create(IndicesCreateParts::Index(index))
        .body(body)
        .send()
        .await?;
    let status = response.status_code();
    let body: Value = response.json().await.unwrap_or_default();
    let raced = body["error"]["type"] == "resource_already_exists_exception";
    anyhow::ensure!(
        status.is_success() || raced,
        "creating index {index}: {status} {body}"
    );
    Ok(())
}

/// The indices `alias` points at (none when it does not exist).
pub async fn behind(client: &Elasticsearch, alias: &str) -> anyhow::Result<Vec<String>> {
    let response = client
        .indices()
        .get_alias(IndicesGetAliasParts::Name(&[alias]))
        .send()
        .await?;
    if response.status_code().as_u16() == 404 {
        return Ok(Vec::new());
    }
    let status = response.status_code();
    let body: Value = response.json().await?;
    anyhow::ensure!(
        status.is_success(),
        "reading alias {alias}: {status} {body}"
    );
    let mut indices: Vec<String> = body
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    indices.sort();
    Ok(indices)
}

/// Points `alias` at `to` (as its write index) instead of `from`, in one
/// atomic step: readers and the projector switch between two requests.
pub async fn swap(
    client: &Elasticsearch,
    alias: &str,
    from: &[String],
    to: &str,
) -> anyhow::Result<()> {
    let mut actions: Vec<Value> = from
        .iter()
        .map(|index| json!({"remove": {"index": index, "alias": alias}}))
        .collect();
    actions.push(json!({"add": {"index": to, "alias": alias, "is_write_index": true}}));
    let response = client
        .indices()
        .update_aliases()
        .body(json!({ "actions": actions }))
        .send()
        .await?;
    succeeded(response, &format!("swapping {alias} to {to}")).await
}

/// Sets `index`'s refresh interval (`-1` while bulk-filling it).
pub async fn set_refresh(
    client: &Elasticsearch,
    index: &str,
    interval: &str,
) -> anyhow::Result<()> {
    let response = client
        .indices()
        .put_settings(IndicesPutSettingsParts::Index(&[index]))
        .body(json!({"index": {"refresh_interval": interval}}))
        .send()
        .await?;
    succeeded(response, &format!("setting refresh of {index}")).await
}

/// Deletes `index`.
pub async fn delete(client: &Elasticsearch, index: &str) -> anyhow::Result<()> {
    let response = client
        .indices()
        .delete(IndicesDeleteParts::Index(&[index]))
        .send()
        .await?;
    let status = response.status_code();
    anyhow::ensure!(status.is_success(), "deleting index {index}: {status}");
    Ok(())
}

/// Whether `index` exists.
pub async fn exists(client: &Elasticsearch, index: &str) -> anyhow::Result<bool> {
    Ok(client
        .indices()
        .exists(IndicesExistsParts::Index(&[index]))
        .send()
        .await?
        .status_code()
        .is_success())
}

/// `index`'s refresh interval as set (`None`: the engine's default). A
/// rebuild by replay sets the live index's to `-1` for its last events, so
/// what readers see there stands still while the copy takes them.
pub async fn refresh_interval(
    client: &Elasticsearch,
    index: &str,
) -> anyhow::Result<Option<String>> {
    let response = client
        .indices()
        .get_settings(IndicesGetSettingsParts::Index(&[index]))
        .flat_settings(true)
        .send()
        .await?;
    let status = response.status_code();
    let body: Value = response.json().await?;
    anyhow::ensure!(
        status.is_success(),
        "reading the settings of {index}: {status} {body}"
    );
    Ok(body[index]["settings"]["index.refresh_interval"]
        .as_str()
        .map(str::to_owned))
}

/// Makes what was written to `index` searchable now.
pub async fn refresh(client: &Elasticsearch, index: &str) -> anyhow::Result<()> {
    let response = client
        .indices()
        .refresh(IndicesRefreshParts::Index(&[index]))
        .send()
        .await?;
    succeeded(response, &format!("refreshing {index}")).await
}

/// Documents in `index` (as of its last refresh).
pub async fn count(client: &Elasticsearch, index: &str) -> anyhow::Result<u64> {
    let response = client.count(CountParts::Index(&[index])).send().await?;
    let status = response.status_code();
    let body: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "counting {index}: {status} {body}");
    Ok(body["count"].as_u64().unwrap_or(0))
}

/// The greatest order id in `index`, after a refresh: where a fill from the
/// write model, which writes in id order, resumes.
pub async fn last_order(client: &Elasticsearch, index: &str) -> anyhow::Result<Option<String>> {
    refresh(client, index).await?;
    let response = client
        .search(SearchParts::Index(&[index]))
        .body(json!({"size": 1, "_source": ["order_id"], "sort": [{"order_id": "desc"}]}))
        .send()
        .await?;
    let status = response.status_code();
    let body: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "reading {index}: {status} {body}");
    Ok(body["hits"]["hits"][0]["_source"]["order_id"]
        .as_str()
        .map(str::to_owned))
}

/// Records `meta` in `index`'s mapping (`_meta`): what a rebuild needs to
/// carry on after it was stopped (its source, when its fill began).
pub async fn set_rebuild_meta(
    client: &Elasticsearch,
    index: &str,
    meta: &Value,
) -> anyhow::Result<()> {
    let response = client
        .indices()
        .put_mapping(IndicesPutMappingParts::Index(&[index]))
        .body(json!({"_meta": {"rebuild": meta}}))
        .send()
        .await?;
    succeeded(response, &format!("recording the rebuild of {index}")).await
}

/// What [`set_rebuild_meta`] recorded for `index` (`null` if nothing).
pub async fn rebuild_meta(client: &Elasticsearch, index: &str) -> anyhow::Result<Value> {
    let response = client
        .indices()
        .get_mapping(IndicesGetMappingParts::Index(&[index]))
        .send()
        .await?;
    let status = response.status_code();
    let body: Value = response.json().await?;
    anyhow::ensure!(
        status.is_success(),
        "reading the mapping of {index}: {status} {body}"
    );
    Ok(body[index]["mappings"]["_meta"]["rebuild"].clone())
}
