//! Upstream providers: how a request reaches a model, whatever wire protocol it speaks.
//!
//! Every provider answers in the OpenAI wire format (JSON, or SSE for streams), so
//! dispatch treats them alike: the OpenAI adapter passes bytes through untouched, the
//! Anthropic adapter translates both ways, the simulated provider generates them.

mod anthropic;
pub mod anthropic_wire;
mod openai;
mod simulated;
pub mod sse;

use crate::config::{ProviderKind, ProviderSection, TargetSection};
use crate::openai::JsonBody;
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// A response body from an upstream, already in the OpenAI wire format.
pub type UpstreamBody = BoxBody<Bytes, UpstreamError>;

/// Why talking to an upstream failed. Messages name no secret and no address.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// Could not connect (refused, DNS, TLS, connect timeout).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The request could not be built or sent.
    #[error("request failed: {0}")]
    Request(String),
    /// The response body broke off or was malformed.
    #[error("response failed: {0}")]
    Body(String),
    /// The target cannot serve this kind of request.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// What the gateway asks of one upstream attempt.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The client's body (unknown fields included).
    pub body: &'a JsonBody,
    /// Chat or embeddings.
    pub kind: AttemptKind,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// Ask the upstream for token log-probabilities (`"logprobs": true`, added to a
    /// body that does not set `logprobs`), for a policy's review of the answer.
    pub logprobs: bool,
}

/// Which API an attempt calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// Chat completions.
    Chat,
    /// Embeddings.
    Embeddings,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, http_body_util::Full<Bytes>>;

/// One target's way upstream: its provider's protocol, its own connection pool, and
/// the model name to send.
pub struct Upstream {
    kind: Kind,
    /// The provider's wire protocol, for telemetry's `gen_ai.provider.name`.
    provider: ProviderKind,
    upstream_model: String,
}

enum Kind {
    OpenAi(openai::OpenAi),
    Anthropic(anthropic::Anthropic),
    Simulated(simulated::Simulated),
}

impl Upstream {
    /// Builds the upstream of `target` at `provider`, with `secret` as its API key.
    pub fn new(
        provider: &ProviderSection,
        target: &TargetSection,
        secret: Option<&str>,
    ) -> Result<Upstream, UpstreamError> {
        let base = provider.base_url.clone().unwrap_or_default();
        let kind = match provider.kind {
            ProviderKind::Openai => Kind::OpenAi(openai::OpenAi::new(
                client(target.connect_timeout())?,
                &base,
                secret,
            )?),
            ProviderKind::Anthropic => Kind::Anthropic(anthropic::Anthropic::new(
                client(target.connect_timeout())?,
                &base,
                secret,
            )?),
            ProviderKind::Simulated => {
                Kind::Simulated(simulated::Simulated::new(provider.simulated.clone()))
            }
        };
        Ok(Upstream {
            kind,
            provider: provider.kind,
            upstream_model: target.upstream_model().to_owned(),
        })
    }

    /// The kind of provider this upstream is.
    pub fn provider(&self) -> ProviderKind {
        self.provider
    }

    /// Sends one attempt; resolves when the response headers arrive.
    pub async fn send(
        &self,
        attempt: Attempt<'_>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        match &self.kind {
            Kind::OpenAi(p) => p.send(&self.upstream_model, attempt).await,
            Kind::Anthropic(p) => p.send(&self.upstream_model, attempt).await,
            Kind::Simulated(p) => p.send(&self.upstream_model, attempt).await,
        }
    }
}

/// A pooled HTTP(S) client with this target's connect timeout and `TCP_NODELAY`.
fn client(connect_timeout: Duration) -> Result<HttpsClient, UpstreamError> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| UpstreamError::Request(format!("TLS setup: {e}")))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https))
}

/// Sends a JSON request and returns the response with its body boxed.
async fn post_json(
    client: &HttpsClient,
    url: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> Result<http::Response<UpstreamBody>, UpstreamError> {
    let mut builder = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, text/event-stream");
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let request = builder
        .body(http_body_util::Full::new(Bytes::from(body)))
        .map_err(|e| UpstreamError::Request(e.to_string()))?;
    let response = client.request(request).await.map_err(|e| {
        if e.is_connect() {
            UpstreamError::Connect(error_chain(&e))
        } else {
            UpstreamError::Request(error_chain(&e))
        }
    })?;
    Ok(response.map(|b| b.map_err(|e| UpstreamError::Body(e.to_string())).boxed()))
}

/// The innermost cause, which is what says what went wrong (e.g. "Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
