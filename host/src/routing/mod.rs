//! The routing pipeline for one request: ask the tenant's policy (or fall back to its
//! safe route), then try the chosen targets in order until one answers, and end the
//! request in one place whichever way it ends.
//!
//! [`decide`] makes the plan, [`dispatch`] carries it out one [`attempt`] at a time
//! (streams go on in a [`relay`]), and [`end`] records how the request ended.

mod attempt;
mod decide;
mod dispatch;
mod end;
mod headers;
mod model_name;
mod relay;
mod scanner;

pub use decide::{Explanation, explain};
pub use headers::{HEADER_ATTEMPTS, HEADER_POLICY, HEADER_REASON, HEADER_TARGET};

use crate::gateway::{Gateway, Tenant};
use crate::openai::{ChatRequest, EmbeddingsRequest, ResponseBody};
use crate::policy::RouteRequest;
use crate::provider::{Attempt, AttemptKind};
use crate::quota::Reservation;
use end::Routed;
use std::sync::Arc;

/// Serves `POST /v1/chat/completions`, settling `reservation` with the usage of the
/// answer (or giving its tokens back when no upstream answers).
pub async fn chat(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    request: ChatRequest,
    request_id: &str,
    key_id: &Arc<str>,
    reservation: Reservation,
) -> http::Response<ResponseBody> {
    let attempt = Attempt {
        body: &request.body,
        kind: AttemptKind::Chat,
        stream: request.stream,
        include_usage: request.include_usage,
    };
    let view = request.route_request(request_id);
    route(
        gateway,
        tenant,
        &view,
        attempt,
        (request_id, key_id),
        request.input_tokens,
        reservation,
    )
    .await
}

/// Serves `POST /v1/embeddings`, settling `reservation` like [`chat`].
pub async fn embeddings(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    request: EmbeddingsRequest,
    request_id: &str,
    key_id: &Arc<str>,
    reservation: Reservation,
) -> http::Response<ResponseBody> {
    let attempt = Attempt {
        body: &request.body,
        kind: AttemptKind::Embeddings,
        stream: false,
        include_usage: false,
    };
    let view = request.route_request(request_id);
    route(
        gateway,
        tenant,
        &view,
        attempt,
        (request_id, key_id),
        request.input_tokens,
        reservation,
    )
    .await
}

/// Decides, then dispatches.
async fn route(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    view: &RouteRequest,
    attempt: Attempt<'_>,
    ids: (&str, &Arc<str>),
    input_estimate: u32,
    reservation: Reservation,
) -> http::Response<ResponseBody> {
    let plan = decide::decide(gateway, tenant, view);
    let routed = Routed::new(gateway, tenant, plan, ids, input_estimate, reservation);
    dispatch::dispatch(routed, attempt).await
}
