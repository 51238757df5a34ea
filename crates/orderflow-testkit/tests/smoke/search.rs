use elasticsearch::indices::{IndicesCreateParts, IndicesRefreshParts};
use elasticsearch::{BulkParts, SearchParts};
use orderflow_testkit::{fresh_index_name, search_client};
use serde_json::{Value, json};

async fn bulk(
    client: &elasticsearch::Elasticsearch,
    index: &str,
    docs: &[(&str, i64, Value)],
) -> Value {
    let mut body: Vec<elasticsearch::http::request::JsonBody<Value>> = Vec::new();
    for (id, version, doc) in docs {
        body.push(
            json!({"index": {"_id": id, "version": version, "version_type": "external"}}).into(),
        );
        body.push(doc.clone().into());
    }
    let response = client
        .bulk(BulkParts::Index(index))
        .body(body)
        .send()
        .await
        .expect("bulk sent");
    assert_eq!(response.status_code().as_u16(), 200);
    response.json().await.expect("bulk json")
}

#[tokio::test]
async fn mapping_external_versions_and_full_text() {
    let client = search_client().await;
    let index = fresh_index_name("smoke_search");

    let created = client
        .indices()
        .create(IndicesCreateParts::Index(&index))
        .body(json!({
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"dynamic": "strict", "properties": {
                "customer_name": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
                "status": {"type": "keyword"},
                "placed_at": {"type": "date"},
                "total_minor": {"type": "long"}
            }}
        }))
        .send()
        .await
        .expect("create sent");
    assert!(
        created.status_code().is_success(),
        "index creation: {}",
        created.status_code()
    );

    let first = bulk(&client, &index, &[
        ("o1", 3, json!({"customer_name": "Ada Lovelace", "status": "paid", "placed_at": "2026-11-30T10:00:00Z", "total_minor": 1250})),
        ("o2", 1, json!({"customer_name": "Grace Hopper", "status": "placed", "placed_at": "2026-11-30T11:00:00Z", "total_minor": 990})),
    ])
    .await;
    assert_eq!(first["errors"], json!(false), "first bulk: {first}");

    // A stale version is refused per item, inside an HTTP 200.
    let stale = bulk(&client, &index, &[
        ("o1", 2, json!({"customer_name": "Stale Name", "status": "placed", "placed_at": "2026-11-30T10:00:00Z", "total_minor": 1})),
    ])
    .await;
    assert_eq!(stale["errors"], json!(true));
    assert_eq!(
        stale["items"][0]["index"]["status"],
        json!(409),
        "stale item: {stale}"
    );

    client
        .indices()
        .refresh(IndicesRefreshParts::Index(&[&index]))
        .send()
        .await
        .expect("refresh");
    let found: Value = client
        .search(SearchParts::Index(&[&index]))
        .body(json!({"query": {"match": {"customer_name": "lovelace"}}}))
        .send()
        .await
        .expect("search sent")
        .json()
        .await
        .expect("search json");
    let hits = found["hits"]["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 1, "{found}");
    assert_eq!(hits[0]["_id"], json!("o1"));
    assert_eq!(
        hits[0]["_source"]["customer_name"],
        json!("Ada Lovelace"),
        "the stale write must not win"
    );
}
