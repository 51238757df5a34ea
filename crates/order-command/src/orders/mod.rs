//! Order commands: PlaceOrder and the lifecycle transitions.
//!
//! A lifecycle command follows these steps in one transaction: claim the
//! idempotency key, lock and load the order, let the pure domain decide,
//! write the new state, the outbox rows and the idempotency record, commit.
//! PlaceOrder takes the same steps in two round trips, a read and one
//! writing statement (see [`place`]); either way the state, its events and
//! the key's record commit together or not at all.

pub mod place;
mod placement;
mod store;
pub mod transition;

use axum::http::StatusCode;
use axum::response::Response;
use orderflow_contracts::{CurrentEvent, EventMeta};
use orderflow_domain::{OrderEvent, OrderId};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

pub use place::{AddressInput, LineInput, PlaceOrderInput, SalesChannelInput, place_order};
pub use transition::{
    CancelInput, DeliverInput, PayInput, ShipInput, cancel_order, deliver_order, pay_order,
    ship_order,
};

use crate::extract::{RequestMeta, etag};
use crate::idempotency::StoredResponse;

/// What every order command answers: the order's id, its new version (the
/// consistency token for reads) and status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderAccepted {
    pub order_id: Uuid,
    /// Pass it to the query API as `min_version` to read your own write.
    pub version: i64,
    pub status: String,
}

/// Wraps decided domain events in envelopes, versions following `from`.
fn envelopes(
    order: OrderId,
    from_version: i64,
    events: &[OrderEvent],
    meta: &RequestMeta,
    at: OffsetDateTime,
) -> Vec<orderflow_contracts::Envelope> {
    let event_meta = EventMeta {
        correlation_id: meta.correlation_id,
        causation_id: meta.request_id,
        occurred_at: at,
    };
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            CurrentEvent::from_domain(order, e, at).into_envelope(
                order,
                from_version + 1 + i as i64,
                event_meta,
            )
        })
        .collect()
}

/// The response of an accepted command, as sent and as stored for replays.
fn accepted(status: StatusCode, order: &orderflow_domain::Order) -> StoredResponse {
    let body = OrderAccepted {
        order_id: order.id.0,
        version: order.version,
        status: order.status.as_str().to_owned(),
    };
    StoredResponse::json(status, &body).etag(etag(order.version))
}

/// Now, at the microsecond precision Postgres stores, so the events and the
/// tables agree to the last digit.
fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

/// Counts a command's outcome for `/metrics`.
fn record(command: &'static str, outcome: &Result<Response, crate::error::ApiError>) {
    let outcome = match outcome {
        Ok(_) => "accepted",
        Err(e) if e.to_problem().status_code().is_server_error() => "failed",
        Err(_) => "rejected",
    };
    metrics::counter!("commands_total", "command" => command, "outcome" => outcome).increment(1);
}
