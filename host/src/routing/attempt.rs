//! One attempt at one target: send, classify the answer, and for streams hold
//! everything back until real content arrives, so that any failure before it can
//! still fall back to the next target without the client noticing.

use super::events::EventStream;
use crate::gateway::Target;
use crate::provider::{Attempt, UpstreamBody, UpstreamError};
use crate::signals::AttemptResult;
use crate::usage::Usage;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::time::{Duration, Instant};
use tokio::time::timeout_at;

/// Largest non-streamed response or error body read from an upstream.
const MAX_BODY: usize = 32 << 20;
/// `Retry-After` assumed when a 429 carries none.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How an attempt ended.
pub(crate) enum Outcome {
    /// A complete (non-streamed) answer.
    Complete {
        parts: http::response::Parts,
        body: Bytes,
        usage: Option<Usage>,
    },
    /// A stream whose first content has arrived: `held` is everything received so
    /// far; the rest is still in `stream`.
    Streaming {
        parts: http::response::Parts,
        held: Bytes,
        stream: Box<EventStream>,
        ttft: Duration,
        total_deadline: tokio::time::Instant,
    },
    /// The client's own mistake (a 4xx other than 401/403/408/429): passed back, not
    /// retried.
    ClientError {
        parts: http::response::Parts,
        body: Bytes,
    },
    /// Worth trying the next target.
    Retry {
        /// The kind of failure, for metrics: `timeout`, `upstream_error`,
        /// `upstream_auth`, `rate_limited`, `server_error`, `stream_failed`,
        /// `unsupported` or [`DEGRADED`].
        cause: &'static str,
        /// Why, for the 503 message and logs (no secrets).
        why: String,
        /// What it says about the target's health.
        result: AttemptResult,
    },
}

/// The cause of a target passed over because the client asked for strictness and the
/// target's protocol would drop part of the request.
pub(crate) const DEGRADED: &str = "degraded";

fn retry(cause: &'static str, why: impl Into<String>, result: AttemptResult) -> Outcome {
    Outcome::Retry {
        cause,
        why: why.into(),
        result,
    }
}

pub(crate) async fn run(target: &Target, attempt: Attempt<'_>) -> Outcome {
    let started = Instant::now();
    let now = tokio::time::Instant::now();
    let first_deadline = now + target.config.first_byte_timeout();
    let total_deadline = now + target.config.total_timeout();

    let response = match timeout_at(first_deadline, target.upstream.send(attempt)).await {
        Err(_) => {
            return retry(
                "timeout",
                "no response before the first-byte timeout",
                AttemptResult::Failure,
            );
        }
        Ok(Err(UpstreamError::Unsupported(why))) => {
            return retry("unsupported", why, AttemptResult::Neutral);
        }
        // Neither says anything about the target's health.
        Ok(Err(e @ UpstreamError::Untranslatable(_))) => {
            return retry("unsupported", e.to_string(), AttemptResult::Neutral);
        }
        Ok(Err(e @ UpstreamError::Degraded(_))) => {
            return retry(DEGRADED, e.to_string(), AttemptResult::Neutral);
        }
        Ok(Err(e)) => return retry("upstream_error", e.to_string(), AttemptResult::Failure),
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    if status == http::StatusCode::TOO_MANY_REQUESTS {
        let wait = retry_after(response.headers()).unwrap_or(DEFAULT_RETRY_AFTER);
        return retry(
            "rate_limited",
            format!("rate-limited (429, retry after {}s)", wait.as_secs()),
            AttemptResult::RateLimited(wait),
        );
    }
    if status.is_server_error() || status == http::StatusCode::REQUEST_TIMEOUT {
        return retry(
            "server_error",
            format!("upstream answered {}", status.as_u16()),
            AttemptResult::Failure,
        );
    }
    // The upstream refused the gateway's own credentials: the target is misconfigured,
    // not the client wrong. Its body is not passed on (OpenAI's shows part of the key).
    if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
        return retry(
            "upstream_auth",
            format!(
                "upstream refused the gateway's credentials ({})",
                status.as_u16()
            ),
            AttemptResult::Failure,
        );
    }
    let (parts, body) = response.into_parts();
    if !status.is_success() {
        return match timeout_at(total_deadline, collect(body)).await {
            Ok(Ok(body)) => Outcome::ClientError { parts, body },
            _ => retry(
                "upstream_error",
                format!("upstream answered {} and then failed", status.as_u16()),
                AttemptResult::Failure,
            ),
        };
    }

    let is_stream = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if is_stream && !attempt.stream {
        return retry(
            "upstream_error",
            "upstream answered a stream to a request for one JSON answer",
            AttemptResult::Failure,
        );
    }
    if !is_stream {
        return match timeout_at(total_deadline, collect(body)).await {
            Err(_) => retry(
                "timeout",
                "the response did not finish before the total timeout",
                AttemptResult::Failure,
            ),
            Ok(Err(e)) => retry("upstream_error", e.to_string(), AttemptResult::Failure),
            Ok(Ok(body)) if !is_json_object(&body) => retry(
                "upstream_error",
                format!(
                    "upstream answered {} with a body that is not a JSON object",
                    status.as_u16()
                ),
                AttemptResult::Failure,
            ),
            Ok(Ok(body)) => {
                let (body, usage) = super::model_name::rewrite_json(body, &target.config.model);
                Outcome::Complete { parts, body, usage }
            }
        };
    }

    let mut stream = EventStream::new(body, &target.config.model, attempt.protocol);
    let mut held = BytesMut::new();
    loop {
        match timeout_at(first_deadline, stream.frame()).await {
            Err(_) => {
                return retry(
                    "timeout",
                    "no content before the first-byte timeout",
                    AttemptResult::Failure,
                );
            }
            Ok(Some(Err(e))) => {
                return retry(
                    "stream_failed",
                    format!("stream failed before any content: {e}"),
                    AttemptResult::Failure,
                );
            }
            Ok(None) => {
                if stream.scanner.done && stream.scanner.error.is_none() {
                    break;
                }
                return retry(
                    "stream_failed",
                    "stream ended before any content",
                    AttemptResult::Failure,
                );
            }
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    held.extend_from_slice(data);
                    if let Some(error) = &stream.scanner.error {
                        return retry(
                            "stream_failed",
                            format!("stream reported an error before any content: {error}"),
                            AttemptResult::Failure,
                        );
                    }
                    if stream.scanner.content || stream.scanner.done {
                        break;
                    }
                }
            }
        }
    }
    Outcome::Streaming {
        parts,
        held: held.freeze(),
        stream: Box::new(stream),
        ttft: started.elapsed(),
        total_deadline,
    }
}

/// An answer must be one JSON object: an HTML error page from a proxy, a captive
/// portal or a wrong base URL is the upstream failing, not a completion.
fn is_json_object(body: &[u8]) -> bool {
    body.trim_ascii_start().first() == Some(&b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

async fn collect(body: UpstreamBody) -> Result<Bytes, UpstreamError> {
    http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| UpstreamError::Body(e.to_string()))
}

/// `Retry-After` in seconds (the HTTP-date form is rare from LLM APIs and ignored).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}
