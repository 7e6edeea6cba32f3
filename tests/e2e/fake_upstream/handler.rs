//! Request handling: record, route, validate, pick the scripted reply and answer it in
//! the wire format of the fake.

use super::anthropic::anthropic_messages;
use super::body::{Piece, Planned, ReplyBody, apply_fault};
use super::openai::{openai_chat, openai_embeddings};
use super::reply::{Fault, Reply};
use super::server::{CancelGuard, Kill, Shared, lock};
use super::{CREATED, Recorded, Wire};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Chat,
    Embeddings,
    Models,
    /// `POST /v1/responses`: answered only with a raw reply (`Reply::raw`).
    Responses,
}

pub(super) async fn handle(
    shared: Arc<Shared>,
    kill: Arc<Kill>,
    req: Request<Incoming>,
) -> Result<Response<ReplyBody>, Infallible> {
    let wire = shared.wire;
    let (parts, body) = req.into_parts();
    // The client may abort mid-upload; record what arrived (nothing) and answer 400,
    // which will not be read anyway.
    let (raw, read_ok) = match body.collect().await {
        Ok(collected) => (collected.to_bytes(), true),
        Err(_) => (Bytes::new(), false),
    };
    let json: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let seq = {
        let mut requests = lock(&shared.requests);
        requests.push(Recorded {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: json.clone(),
            raw_body: raw,
        });
        requests.len()
    };

    // Azure OpenAI speaks the same API under its own paths: per deployment
    // (`/openai/deployments/{name}/…?api-version=…`) or the v1 API (`/openai/v1/…`).
    let path = parts.uri.path();
    let path = match path.strip_prefix("/openai/deployments/") {
        Some(rest) => rest.find('/').map_or(path, |at| &rest[at..]),
        None => path.strip_prefix("/openai").unwrap_or(path),
    };
    let path = if path.starts_with("/v1/") {
        path.to_owned()
    } else {
        format!("/v1{path}")
    };
    let route = match (wire, &parts.method, path.as_str()) {
        (Wire::OpenAi, &Method::POST, "/v1/chat/completions") => Route::Chat,
        (Wire::OpenAi, &Method::POST, "/v1/embeddings") => Route::Embeddings,
        (Wire::OpenAi, &Method::POST, "/v1/responses") => Route::Responses,
        (Wire::Anthropic, &Method::POST, "/v1/messages") => Route::Chat,
        (_, &Method::GET, "/v1/models") => Route::Models,
        (_, method, path) => {
            let message = format!("fake upstream: no route for {method} {path}");
            return Ok(error_response(wire, StatusCode::NOT_FOUND, &message, seq));
        }
    };
    if !read_ok {
        return Ok(error_response(
            wire,
            StatusCode::BAD_REQUEST,
            "request body could not be read",
            seq,
        ));
    }
    if let Err(message) = validate(wire, route, &json) {
        return Ok(error_response(wire, StatusCode::BAD_REQUEST, &message, seq));
    }

    let reply = {
        let mut script = lock(&shared.script);
        let next = script.queue.pop_front();
        next.unwrap_or_else(|| script.default.clone())
    };

    if reply.fault == Fault::ResetBeforeHeaders {
        tokio::time::sleep(reply.delay_headers).await;
        kill.reset_connection();
        // The connection task drops this future together with the connection; hang
        // until then so that no response can slip out first.
        let never: Infallible = std::future::pending().await;
        match never {}
    }

    // Armed from here: if hyper drops this future during the delay (client gone), the
    // guard counts the cancellation; otherwise it moves into the body.
    let guard = CancelGuard(Some(shared.clone()));
    if !reply.delay_headers.is_zero() {
        tokio::time::sleep(reply.delay_headers).await;
    }
    let mut response = scripted_response(wire, route, seq, &json, &reply);
    response.body_mut().guard = guard;
    Ok(response)
}

/// What the real APIs reject before doing anything, so a translation bug in the gateway
/// shows up as a 400 instead of a success.
fn validate(wire: Wire, route: Route, body: &Value) -> Result<(), String> {
    if route == Route::Models {
        return Ok(());
    }
    if !body.is_object() {
        return Err("request body must be a JSON object".into());
    }
    if !body.get("model").is_some_and(Value::is_string) {
        return Err("model: field required (a string)".into());
    }
    match route {
        Route::Responses => {
            if body.get("input").is_none() {
                return Err("input: field required".into());
            }
        }
        Route::Chat => {
            if !body.get("messages").is_some_and(Value::is_array) {
                return Err("messages: field required (an array)".into());
            }
            if wire == Wire::Anthropic && !body.get("max_tokens").is_some_and(Value::is_u64) {
                return Err("max_tokens: field required (an integer)".into());
            }
        }
        Route::Embeddings => {
            if !body
                .get("input")
                .is_some_and(|i| i.is_string() || i.is_array())
            {
                return Err("input: field required (a string or an array)".into());
            }
        }
        Route::Models => {}
    }
    Ok(())
}

/// Quotes and escapes `s` as a JSON string.
pub(super) fn q(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn request_id_header(wire: Wire) -> &'static str {
    match wire {
        Wire::OpenAi => "x-request-id",
        Wire::Anthropic => "request-id",
    }
}

/// An unscripted JSON response (404, validation 400): sent at once, never counted as
/// cancelled.
fn error_response(
    wire: Wire,
    status: StatusCode,
    message: &str,
    seq: usize,
) -> Response<ReplyBody> {
    let body = Bytes::from(error_json(wire, status, message).to_string());
    let mut response = Response::new(ReplyBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(id) = HeaderValue::from_str(&format!("req_fake_{seq}")) {
        headers.insert(request_id_header(wire), id);
    }
    response
}

/// The provider's error body; the type follows the status as the real APIs do.
fn error_json(wire: Wire, status: StatusCode, message: &str) -> Value {
    let code = status.as_u16();
    match wire {
        Wire::OpenAi => {
            let (kind, code_name) = match code {
                401 => ("invalid_request_error", json!("invalid_api_key")),
                403 => ("permission_error", Value::Null),
                404 => ("invalid_request_error", json!("not_found")),
                429 => ("requests", json!("rate_limit_exceeded")),
                500..=599 => ("server_error", Value::Null),
                _ => ("invalid_request_error", Value::Null),
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": code_name}})
        }
        Wire::Anthropic => {
            let kind = match code {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                500..=599 => "api_error",
                _ => "invalid_request_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
    }
}

fn scripted_response(
    wire: Wire,
    route: Route,
    seq: usize,
    req: &Value,
    reply: &Reply,
) -> Response<ReplyBody> {
    let model = reply
        .model
        .clone()
        .or_else(|| req.get("model").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "fake-model".to_string());
    let planned = if reply.status.as_u16() >= 400 {
        let message = format!("fake upstream: scripted {} error", reply.status.as_u16());
        Planned::json(error_json(wire, reply.status, &message))
    } else {
        match (wire, route) {
            (Wire::OpenAi, Route::Chat) => openai_chat(seq, &model, req, reply),
            (Wire::OpenAi, Route::Embeddings) => openai_embeddings(&model, req),
            (Wire::Anthropic, Route::Chat) => anthropic_messages(seq, &model, req, reply),
            (_, Route::Models) => models(wire, reply),
            // validate() routes embeddings to OpenAI only.
            (Wire::Anthropic, Route::Embeddings) => Planned::json(Value::Null),
            // Tests script Responses answers whole (`Reply::raw`).
            (_, Route::Responses) => Planned::json(Value::Null),
        }
    };

    let (stream, content_type, (pieces, exact_len)) = match &reply.raw {
        Some((content_type, raw)) => (
            content_type.starts_with("text/event-stream"),
            content_type.clone(),
            (
                raw.iter()
                    .map(|p| Piece::Data(Bytes::from(p.clone())))
                    .collect(),
                None,
            ),
        ),
        None => (
            planned.stream,
            planned.content_type.to_owned(),
            apply_fault(planned, reply.fault),
        ),
    };
    let body = ReplyBody::new(
        pieces,
        reply.delay_first_chunk,
        reply.chunk_interval,
        exact_len,
    );
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    if let Ok(content_type) = HeaderValue::from_str(&content_type) {
        headers.insert(hyper::header::CONTENT_TYPE, content_type);
    }
    if stream {
        headers.insert(
            hyper::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
    }
    if let Ok(id) = HeaderValue::from_str(&format!("req_fake_{seq}")) {
        headers.insert(request_id_header(wire), id);
    }
    for (name, _) in &reply.headers {
        headers.remove(name);
    }
    for (name, value) in &reply.headers {
        headers.append(name.clone(), value.clone());
    }
    response
}

pub(super) fn is_stream(req: &Value) -> bool {
    req.get("stream") == Some(&Value::Bool(true))
}
fn models(wire: Wire, reply: &Reply) -> Planned {
    let mut ids: Vec<String> = match wire {
        Wire::OpenAi => vec![
            "gpt-4o".into(),
            "gpt-4o-mini".into(),
            "text-embedding-3-small".into(),
        ],
        Wire::Anthropic => vec!["claude-sonnet-4-5".into(), "claude-haiku-4-5".into()],
    };
    if let Some(m) = &reply.model
        && !ids.contains(m)
    {
        ids.insert(0, m.clone());
    }
    Planned::json(match wire {
        Wire::OpenAi => json!({
            "object": "list",
            "data": ids
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": CREATED, "owned_by": "fake-upstream"}))
                .collect::<Vec<_>>(),
        }),
        Wire::Anthropic => json!({
            "data": ids
                .iter()
                .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"}))
                .collect::<Vec<_>>(),
            "has_more": false,
            "first_id": ids.first(),
            "last_id": ids.last(),
        }),
    })
}
