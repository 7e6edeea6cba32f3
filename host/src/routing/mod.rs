//! The routing pipeline for one request: ask the tenant's policy (or fall back to its
//! safe route), then try the chosen targets in order until one answers, and end the
//! request in one place whichever way it ends.
//!
//! [`admit`] checks the quotas, [`decide`] makes the plan, [`dispatch`] carries it out one [`attempt`] at a time
//! (streams go on in a [`relay`]), and [`end`] records how the request ended.

mod admit;
mod attempt;
mod decide;
mod dispatch;
mod end;
mod events;
mod headers;
mod hold;
mod model_name;
mod relay;
mod review;
mod scanner;

pub use crate::provider::HEADER_DEGRADED;
pub use decide::{Explanation, explain};
pub use headers::{
    HEADER_ATTEMPTS, HEADER_ESCALATIONS, HEADER_POLICY, HEADER_REASON, HEADER_TARGET,
};

use crate::anthropic::MessagesRequest;
use crate::gateway::{Gateway, Tenant};
use crate::openai::{ChatRequest, EmbeddingsRequest, ResponseBody, ResponsesRequest};
use crate::policy::{self, RouteRequest};
use crate::protocol::Protocol;
use crate::provider::{Attempt, AttemptKind};
use crate::tenancy::Caller;
use end::Routed;
use std::sync::Arc;

/// Serves `POST /v1/chat/completions`: admits it against the quotas, asks the policy,
/// dispatches, and settles the quota reservation with the usage of the answer (or
/// gives its tokens back when no upstream answers).
pub async fn chat(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    caller: &Caller,
    request: ChatRequest,
    request_id: &str,
) -> http::Response<ResponseBody> {
    let attempt = Attempt {
        strict: request.strict,
        ..Attempt::chat(&request.body, request.stream, request.include_usage)
    };
    let estimate =
        u64::from(request.input_tokens) + u64::from(request.max_output_tokens.unwrap_or(0));
    let view = request.route_request(request_id);
    let routed = Routed::new(
        gateway,
        tenant,
        (request_id, &caller.key_id),
        request.input_tokens,
        AttemptKind::Chat,
    );
    route(routed, caller, &view, attempt, estimate).await
}

/// Serves `POST /v1/messages`, like [`chat`]: the answer, its stream and every error
/// in Anthropic's shapes, whatever protocol the serving target speaks.
pub async fn messages(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    caller: &Caller,
    request: MessagesRequest,
    request_id: &str,
) -> http::Response<ResponseBody> {
    let attempt = Attempt {
        protocol: Protocol::Messages,
        forward: &request.forward,
        strict: request.strict,
        input_estimate: request.input_tokens,
        ..Attempt::chat(&request.body, request.stream, false)
    };
    let view = request.route_request(request_id);
    in_protocol((gateway, tenant, caller), request_id, attempt, &view).await
}

/// Serves `POST /v1/responses`, like [`chat`]: the answer as a `response` object or
/// the Responses event stream, errors in OpenAI's shape.
pub async fn responses(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    caller: &Caller,
    request: ResponsesRequest,
    request_id: &str,
) -> http::Response<ResponseBody> {
    let attempt = Attempt {
        protocol: Protocol::Responses,
        strict: request.strict,
        input_estimate: request.input_tokens,
        ..Attempt::chat(&request.body, request.stream, false)
    };
    let view = request.route_request(request_id);
    in_protocol((gateway, tenant, caller), request_id, attempt, &view).await
}

/// Routes a chat-like request of `attempt.protocol`: its end and its errors take that
/// protocol's shape, and its quota estimate is the view's input and output tokens.
async fn in_protocol(
    (gateway, tenant, caller): (&Arc<Gateway>, &Arc<Tenant>, &Caller),
    request_id: &str,
    attempt: Attempt<'_>,
    view: &RouteRequest,
) -> http::Response<ResponseBody> {
    let fields = view.fields();
    let estimate =
        u64::from(fields.input_tokens) + u64::from(fields.max_output_tokens.unwrap_or(0));
    let mut routed = Routed::new(
        gateway,
        tenant,
        (request_id, &caller.key_id),
        fields.input_tokens,
        AttemptKind::Chat,
    );
    routed.protocol = attempt.protocol;
    route(routed, caller, view, attempt, estimate).await
}

/// Serves `POST /v1/embeddings`, like [`chat`].
pub async fn embeddings(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    caller: &Caller,
    request: EmbeddingsRequest,
    request_id: &str,
) -> http::Response<ResponseBody> {
    let attempt = Attempt {
        kind: AttemptKind::Embeddings,
        ..Attempt::chat(&request.body, false, false)
    };
    let view = request.route_request(request_id);
    let routed = Routed::new(
        gateway,
        tenant,
        (request_id, &caller.key_id),
        request.input_tokens,
        AttemptKind::Embeddings,
    );
    route(
        routed,
        caller,
        &view,
        attempt,
        u64::from(request.input_tokens),
    )
    .await
}

/// Admits, decides, then dispatches; a request the quotas refuse ends at once.
async fn route(
    mut routed: Routed,
    caller: &Caller,
    view: &RouteRequest,
    attempt: Attempt<'_>,
    estimate: u64,
) -> http::Response<ResponseBody> {
    let (gateway, tenant) = (routed.gateway.clone(), routed.tenant.clone());
    match admit::admit(&gateway, &tenant, caller, estimate, view.id()).await {
        Ok(admitted) => {
            routed.reservation = Some(admitted.reservation);
            routed.tenant_slot = admitted.slot;
        }
        Err(error) => {
            let response = error.into_response_in(routed.protocol);
            routed.end(policy::Ending::Rejected, response.status().as_u16(), None);
            return response;
        }
    }
    routed.plan = Some(decide::decide(&gateway, &tenant, view));
    dispatch::dispatch(routed, attempt, view).await
}
