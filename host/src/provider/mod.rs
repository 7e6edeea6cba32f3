//! Upstream providers: how a request reaches a model, whatever wire protocol it speaks.
//!
//! Every upstream answers in the wire format of the protocol the client spoke (JSON,
//! or SSE for streams), so dispatch treats them alike. A chat request goes to an
//! OpenAI-compatible server byte for byte, to Anthropic translated both ways, to the
//! simulated provider which generates chat answers. A Messages request goes to
//! Anthropic byte for byte and to the others through a translation to chat and back
//! ([`over_chat`]), which names what it had to drop. A Responses request goes
//! to every upstream through chat ([`over_chat`]): to an Anthropic one,
//! chat is then translated to Messages as for a chat client.

mod anthropic;
pub mod anthropic_wire;
mod openai;
mod over_chat;
pub mod responses_wire;
mod simulated;
pub mod sse;
mod translated;

use crate::config::{ProviderKind, ProviderSection, TargetSection};
use crate::openai::JsonBody;
use crate::protocol::Protocol;
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// A response body from an upstream, already in the wire format of the client's
/// protocol.
pub type UpstreamBody = BoxBody<Bytes, UpstreamError>;

/// On an answer translated from another protocol: what of the request the upstream's
/// protocol could not carry, comma-separated (e.g. `thinking, cache_control`).
pub const HEADER_DEGRADED: http::HeaderName = http::HeaderName::from_static("x-signalbox-degraded");

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
    /// The request cannot be put in the target's protocol (a block the translation
    /// does not know).
    #[error("cannot translate the request: {0}")]
    Untranslatable(String),
    /// The client asked for strictness and this target would drop these parts of the
    /// request (e.g. `thinking`).
    #[error("would drop {0} (strict)")]
    Degraded(String),
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
    /// The protocol the client spoke, which the answer must be in.
    pub protocol: Protocol,
    /// Client headers for an upstream of the client's own protocol (`anthropic-version`
    /// and `anthropic-beta`).
    pub forward: &'a [(http::HeaderName, http::HeaderValue)],
    /// The client wants no target that would drop part of its request.
    pub strict: bool,
    /// The gateway's estimate of the input tokens, for a translated stream's opening
    /// event (the upstream's count arrives at its end).
    pub input_estimate: u32,
}

impl<'a> Attempt<'a> {
    /// A chat attempt for `body` (parsed from a chat completion request).
    pub fn chat(body: &'a JsonBody, stream: bool, include_usage: bool) -> Self {
        Attempt {
            body,
            kind: AttemptKind::Chat,
            stream,
            include_usage,
            logprobs: false,
            protocol: Protocol::Chat,
            forward: &[],
            strict: false,
            input_estimate: 0,
        }
    }
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
    /// OpenAI's Responses API: the same client, another path.
    Responses(openai::OpenAi),
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
            ProviderKind::OpenaiResponses => Kind::Responses(openai::OpenAi::new(
                client(target.connect_timeout())?,
                &base,
                secret,
            )?),
            ProviderKind::Azure => Kind::OpenAi(openai::OpenAi::azure(
                client(target.connect_timeout())?,
                &openai::AzureSite {
                    base: &base,
                    api_version: provider.api_version.as_deref(),
                    deployment: target.upstream_model(),
                    entra: provider.entra_token_env.is_some(),
                },
                secret,
            )),
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

    /// Sends one attempt; resolves when the response headers arrive. The answer is in
    /// the attempt's protocol.
    pub async fn send(
        &self,
        attempt: Attempt<'_>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        match (attempt.protocol, &self.kind) {
            (Protocol::Responses, Kind::Responses(p)) => {
                p.send_responses(&self.upstream_model, attempt).await
            }
            (_, Kind::Responses(_)) => Err(UpstreamError::Unsupported(
                "this target speaks only the Responses API",
            )),
            (Protocol::Chat, _) => self.send_chat(attempt).await,
            (Protocol::Messages, Kind::Anthropic(p)) => {
                p.pass_through(&self.upstream_model, attempt).await
            }
            (Protocol::Messages, _) => {
                over_chat::send(self, &self.upstream_model, attempt, over_chat::Messages).await
            }
            (Protocol::Responses, _) => {
                let over = over_chat::Responses::new();
                over_chat::send(self, &self.upstream_model, attempt, over).await
            }
        }
    }

    /// Sends a chat attempt, answered in the chat wire format.
    async fn send_chat(
        &self,
        attempt: Attempt<'_>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        match &self.kind {
            Kind::OpenAi(p) => p.send(&self.upstream_model, attempt).await,
            Kind::Responses(_) => Err(UpstreamError::Unsupported(
                "this target speaks only the Responses API",
            )),
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
