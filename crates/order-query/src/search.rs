//! `GET /orders/search`: full text over the search index.
//!
//! The user's text goes into a `multi_match` query, which analyses it as
//! plain text: no operator, wildcard or field syntax in it is interpreted,
//! so it cannot widen the filters.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use elasticsearch::SearchParts;
use orderflow_domain::{SalesChannel, geo};
use orderflow_readmodel::OrderSummary;
use orderflow_service::auth::Actor;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::app::{AppState, Source};
use crate::error::{QueryError, QueryResult};
use crate::params::{Cursor, MAX_QUERY_CHARS, RawParams};
use crate::summary::OrderPage;

/// `region`, upper-cased, when it has the shape of an ISO 3166-2 code.
fn region(params: &RawParams) -> QueryResult<Option<String>> {
    params
        .str("region")
        .map(|raw| {
            geo::region_code(raw)
                .map(|code| code.to_string())
                .map_err(|_| {
                    QueryError::param("region", "must be an ISO 3166-2 code such as GB-SCT")
                })
        })
        .transpose()
}

/// `GET /orders/search`
#[utoipa::path(get, path = "/orders/search", tag = "orders",
    params(("q" = Option<String>, Query, description = "Plain text matched against customer name and email, product names, SKUs and tracking number (never query syntax); at most 200 characters after trimming, no control characters"),
        ("customer_id" = Option<Uuid>, Query),
        ("status" = Option<crate::openapi::StatusFilter>, Query),
        ("region" = Option<String>, Query, pattern = r"^[A-Za-z]{2}-[A-Za-z0-9]{1,3}$", description = "ISO 3166-2 code of the shipping address's region, any case (`GB-SCT`); orders placed before OrderPlaced v2, or without a region, never match"),
        ("sales_channel" = Option<crate::openapi::SalesChannelFilter>, Query, description = "Where the order was placed; orders without a known channel never match"),
        ("placed_from" = Option<String>, Query, format = DateTime, description = "RFC 3339, inclusive"),
        ("placed_to" = Option<String>, Query, format = DateTime, description = "RFC 3339, exclusive"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, pattern = r"^[0-9]{1,16}\.[0-9a-fA-F]{32}$", description = "`next_cursor` of the previous page")),
    responses((status = 200, body = OrderPage, description = "Newest first"),
        (status = 400, description = "`invalid-parameter` (unknown, repeated or malformed, naming it)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the search engine is not answering (`Retry-After`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub async fn search_orders(
    State(state): State<AppState>,
    actor: Actor,
    params: RawParams,
) -> QueryResult<Response> {
    let list = params.list(&["q", "region", "sales_channel"])?;
    let limit = list.limit;
    let mut must = Vec::new();
    if let Some(q) = params.str("q") {
        let q = q.trim();
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(QueryError::param(
                "q",
                format!("at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        if q.chars().any(char::is_control) {
            return Err(QueryError::param(
                "q",
                "must not contain control characters",
            ));
        }
        if !q.is_empty() {
            must.push(json!({"multi_match": {
                "query": q,
                "fields": ["customer_name", "customer_email", "product_names", "skus", "tracking_number"],
                "operator": "and",
                "lenient": true
            }}));
        }
    }
    let mut filter = Vec::new();
    // A customer searches their own orders only: a term filter built here,
    // beside (never inside) the user's text, which cannot widen it.
    if let Some(own) = actor.own_customer() {
        filter.push(json!({"term": {"customer_id": own}}));
    }
    if let Some(customer) = list.customer_id {
        filter.push(json!({"term": {"customer_id": customer}}));
    }
    if let Some(status) = list.status {
        filter.push(json!({"term": {"status": status}}));
    }
    if let Some(region) = region(&params)? {
        filter.push(json!({"term": {"shipping_address.region": region}}));
    }
    if let Some(raw) = params.str("sales_channel") {
        let channel = SalesChannel::parse(raw).ok_or_else(|| {
            let all: Vec<&str> = SalesChannel::ALL.iter().map(|c| c.as_str()).collect();
            QueryError::param(
                "sales_channel",
                format!("must be one of {}", all.join(", ")),
            )
        })?;
        filter.push(json!({"term": {"sales_channel": channel.as_str()}}));
    }
    let mut range = serde_json::Map::new();
    if let Some(from) = list.placed_from {
        range.insert(
            "gte".into(),
            json!(from.format(&Rfc3339).unwrap_or_default()),
        );
    }
    if let Some(to) = list.placed_to {
        range.insert("lt".into(), json!(to.format(&Rfc3339).unwrap_or_default()));
    }
    if !range.is_empty() {
        filter.push(json!({"range": {"placed_at": range}}));
    }
    let mut body = json!({
        "size": limit + 1,
        "query": {"bool": {"must": must, "filter": filter}},
        "sort": [{"placed_at": "desc"}, {"order_id": "desc"}],
        "track_total_hits": false
    });
    if let Some(cursor) = list.cursor {
        let millis = (cursor.placed_at.unix_timestamp_nanos() / 1_000_000) as i64;
        body["search_after"] = json!([millis, cursor.order_id.to_string()]);
    }
    let response = state
        .search
        .search(SearchParts::Index(&[&state.alias]))
        .body(body)
        .send()
        .await
        .map_err(|e| QueryError::Unavailable(e.to_string()))?;
    let status = response.status_code();
    let result: Value = response
        .json()
        .await
        .map_err(|e| QueryError::Unavailable(e.to_string()))?;
    // Before the projector has created the index there is nothing to find.
    let no_index = status.as_u16() == 404 && result["error"]["type"] == "index_not_found_exception";
    if !status.is_success() && !no_index {
        return Err(QueryError::Unavailable(format!(
            "search: {status} {}",
            result["error"]["type"]
        )));
    }
    let hits = result["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut items = Vec::with_capacity(hits.len());
    let mut sorts = Vec::with_capacity(hits.len());
    for hit in hits {
        if let Ok(summary) = serde_json::from_value::<OrderSummary>(hit["_source"].clone()) {
            items.push(summary);
            sorts.push(hit["sort"][0].as_i64().unwrap_or(0));
        }
    }
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        let last = items.last().expect("non-empty");
        let millis = sorts[items.len() - 1];
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .ok()
            .map(|placed_at| {
                Cursor {
                    placed_at,
                    order_id: last.order_id,
                }
                .encode()
            })
    } else {
        None
    };
    let headers = state.staleness(Source::Search, None);
    Ok((headers, Json(OrderPage { items, next_cursor })).into_response())
}
