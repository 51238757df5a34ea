//! `POST /orders/{id}/pay|ship|deliver|cancel`: the lifecycle commands.
//!
//! All four share one path; they differ only in the command handed to the
//! domain. `If-Match` (optional) makes a command conditional on the version
//! the caller last saw.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use orderflow_domain::{Command, OrderId, Text, decide, evolve};
use serde::Deserialize;

use super::{OrderAccepted, accepted, envelopes, now, record, store};
use crate::access::{Action, allow, owns};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Actor, IdPath, IdempotencyKey, IfMatch, MaybeJson, RequestMeta, fingerprint};

/// Fail point: a transition's state rows are written, its outbox rows not
/// yet. Armed only by tests (the `fail` crate, `fail::cfg(AFTER_STATE_WRITE,
/// "return")`); compiled out of builds without its `failpoints` feature, as
/// release builds are.
pub const AFTER_STATE_WRITE: &str = "order_command::after_state_write";
/// Fail point: state and outbox rows are written, just before commit.
pub const BEFORE_COMMIT: &str = "order_command::before_commit";

/// Body of `POST /orders/{id}/pay` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayInput {
    /// The payment provider's reference, up to 100 characters.
    #[serde(default)]
    pub payment_reference: Option<String>,
}

/// Body of `POST /orders/{id}/ship`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipInput {
    /// Up to 100 characters.
    pub carrier: String,
    /// Up to 100 characters.
    pub tracking_number: String,
}

/// Body of `POST /orders/{id}/cancel`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    /// Why, up to 500 characters.
    pub reason: String,
}

fn required_text(field: &str, raw: &str, max: usize) -> ApiResult<Text> {
    Text::parse(raw, max).map_err(|e| ApiError::field(field, e))
}

/// Everything a lifecycle request carries besides its command.
struct Request<'a> {
    state: &'a AppState,
    actor: Actor,
    meta: RequestMeta,
    key: IdempotencyKey,
    if_match: IfMatch,
    order_id: OrderId,
    action: &'static str,
    body: bytes::Bytes,
}

fn access(action: &str) -> Action {
    match action {
        "pay" => Action::Pay,
        "ship" => Action::Ship,
        "deliver" => Action::Deliver,
        _ => Action::Cancel,
    }
}

macro_rules! lifecycle_handler {
    ($(#[$doc:meta])* $name:ident, $action:literal, $input:ty, $to_command:expr) => {
        $(#[$doc])*
        pub async fn $name(
            State(state): State<AppState>,
            actor: Actor,
            meta: RequestMeta,
            key: IdempotencyKey,
            if_match: IfMatch,
            IdPath(id): IdPath,
            body: MaybeJson<$input>,
        ) -> ApiResult<Response> {
            let to_command: fn($input) -> ApiResult<Command> = $to_command;
            let result = match to_command(body.value) {
                Ok(command) => {
                    let request = Request {
                        state: &state,
                        actor,
                        meta,
                        key,
                        if_match,
                        order_id: OrderId(id),
                        action: $action,
                        body: body.bytes,
                    };
                    transition(request, command).await
                }
                Err(e) => Err(e),
            };
            record($action, &result);
            result
        }
    };
}

lifecycle_handler!(
    /// `POST /orders/{id}/pay`
    #[utoipa::path(post, path = "/orders/{id}/pay", tag = "orders", request_body(content = PayInput, description = "Optional (no body is `{}`)"),
        params(("id" = uuid::Uuid, Path), ("Idempotency-Key" = Option<String>, Header, nullable = false, description = "1 to 255 visible ASCII characters; a retry with the same key and body returns the first response (`Idempotent-Replayed: true`)"), ("If-Match" = Option<String>, Header, nullable = false, description = "`\"<version>\"` (or `*`): fail with 412 `version-mismatch` unless the order is at that version")),
        responses((status = 200, body = OrderAccepted, description = "Accepted; `ETag` is the new version"),
            (status = 400, description = "`malformed-json`; `invalid-id`; `invalid-header`: a malformed Idempotency-Key or If-Match", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 404, description = "`not-found`: no such order", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 409, description = "`invalid-transition` (with `current_state`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 412, description = "`version-mismatch`: If-Match names another version (with `current_version`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 413, description = "`payload-too-large`: a body over 64 KiB", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 415, description = "`unsupported-media-type`: a body that is not application/json", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 422, description = "`invalid-body`, `validation`, `idempotency-key-reused`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 500, description = "`internal`: a database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
    pay_order, "pay", PayInput,
    |input| {
        let payment_reference = input
            .payment_reference
            .as_deref()
            .map(|r| required_text("payment_reference", r, 100))
            .transpose()?;
        Ok(Command::Pay { payment_reference })
    }
);

lifecycle_handler!(
    /// `POST /orders/{id}/ship`
    #[utoipa::path(post, path = "/orders/{id}/ship", tag = "orders", request_body = ShipInput,
        params(("id" = uuid::Uuid, Path), ("Idempotency-Key" = Option<String>, Header, nullable = false, description = "1 to 255 visible ASCII characters; a retry with the same key and body returns the first response (`Idempotent-Replayed: true`)"), ("If-Match" = Option<String>, Header, nullable = false, description = "`\"<version>\"` (or `*`): fail with 412 `version-mismatch` unless the order is at that version")),
        responses((status = 200, body = OrderAccepted, description = "Accepted; `ETag` is the new version"),
            (status = 400, description = "`malformed-json`; `invalid-id`; `invalid-header`: a malformed Idempotency-Key or If-Match", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 404, description = "`not-found`: no such order", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 409, description = "`invalid-transition` (with `current_state`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 412, description = "`version-mismatch`: If-Match names another version (with `current_version`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 413, description = "`payload-too-large`: a body over 64 KiB", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 415, description = "`unsupported-media-type`: a body that is not application/json", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 422, description = "`invalid-body`, `validation`, `idempotency-key-reused`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 500, description = "`internal`: a database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
    ship_order, "ship", ShipInput,
    |input| {
        Ok(Command::Ship {
            carrier: required_text("carrier", &input.carrier, 100)?,
            tracking_number: required_text("tracking_number", &input.tracking_number, 100)?,
        })
    }
);

lifecycle_handler!(
    /// `POST /orders/{id}/deliver`
    #[utoipa::path(post, path = "/orders/{id}/deliver", tag = "orders",
        params(("id" = uuid::Uuid, Path), ("Idempotency-Key" = Option<String>, Header, nullable = false, description = "1 to 255 visible ASCII characters; a retry with the same key and body returns the first response (`Idempotent-Replayed: true`)"), ("If-Match" = Option<String>, Header, nullable = false, description = "`\"<version>\"` (or `*`): fail with 412 `version-mismatch` unless the order is at that version")),
        responses((status = 200, body = OrderAccepted, description = "Accepted; `ETag` is the new version"),
            (status = 400, description = "`malformed-json`; `invalid-id`; `invalid-header`: a malformed Idempotency-Key or If-Match", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 404, description = "`not-found`: no such order", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 409, description = "`invalid-transition` (with `current_state`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 412, description = "`version-mismatch`: If-Match names another version (with `current_version`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 413, description = "`payload-too-large`: a body over 64 KiB", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 415, description = "`unsupported-media-type`: a body that is not application/json", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 422, description = "`invalid-body` (a body other than empty or `{{}}`), `idempotency-key-reused`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 500, description = "`internal`: a database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
    deliver_order, "deliver", DeliverInput,
    |_| Ok(Command::Deliver)
);

lifecycle_handler!(
    /// `POST /orders/{id}/cancel`
    #[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders", request_body = CancelInput,
        params(("id" = uuid::Uuid, Path), ("Idempotency-Key" = Option<String>, Header, nullable = false, description = "1 to 255 visible ASCII characters; a retry with the same key and body returns the first response (`Idempotent-Replayed: true`)"), ("If-Match" = Option<String>, Header, nullable = false, description = "`\"<version>\"` (or `*`): fail with 412 `version-mismatch` unless the order is at that version")),
        responses((status = 200, body = OrderAccepted, description = "Accepted; `ETag` is the new version"),
            (status = 400, description = "`malformed-json`; `invalid-id`; `invalid-header`: a malformed Idempotency-Key or If-Match", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 404, description = "`not-found`: no such order", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 409, description = "`invalid-transition` (with `current_state`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 412, description = "`version-mismatch`: If-Match names another version (with `current_version`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 413, description = "`payload-too-large`: a body over 64 KiB", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 415, description = "`unsupported-media-type`: a body that is not application/json", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 422, description = "`invalid-body`, `validation`, `idempotency-key-reused`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
            (status = 500, description = "`internal`: a database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
    cancel_order, "cancel", CancelInput,
    |input| Ok(Command::Cancel { reason: required_text("reason", &input.reason, 500)? })
);

/// `POST /orders/{id}/deliver` takes no fields (an empty body or `{}`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverInput {}

async fn transition(request: Request<'_>, command: Command) -> ApiResult<Response> {
    let Request {
        state,
        actor,
        meta,
        key,
        if_match,
        order_id,
        action,
        body,
    } = request;
    allow(&actor, access(action))?;
    let print = fingerprint("POST", &format!("/orders/{order_id}/{action}"), &body);
    let owner = actor.clone();
    let run = async move |tx: &mut sqlx::PgConnection| {
        // Another customer's order is answered as one that does not exist.
        let order = store::lock_order(tx, order_id)
            .await?
            .filter(|o| owns(&owner, o.customer.id.0))
            .ok_or(ApiError::NotFound("order"))?;
        if let Some(expected) = if_match.0
            && expected != order.version
        {
            return Err(ApiError::VersionMismatch {
                current: order.version,
            });
        }
        let from_version = order.version;
        let events = decide(Some(&order), command)?;
        let at = now();
        let mut current = order;
        for event in &events {
            current = evolve(Some(current), event, at)?;
            store::apply_transition(tx, &current, event, at).await?;
        }
        fail::fail_point!(AFTER_STATE_WRITE, |_| Err(ApiError::InjectedFault(
            AFTER_STATE_WRITE
        )));
        let envelopes = envelopes(order_id, from_version, &events, &meta, at);
        orderflow_outbox::append(tx, &envelopes, meta.traceparent.as_deref()).await?;
        fail::fail_point!(BEFORE_COMMIT, |_| Err(ApiError::InjectedFault(
            BEFORE_COMMIT
        )));
        Ok(accepted(StatusCode::OK, &current))
    };
    state.execute(&actor, &key, &print, run).await
}
