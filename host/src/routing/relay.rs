//! The body of a streamed response: what the upstream sends passes through byte for
//! byte; when the stream ends, the attempt is accounted. After the first byte has
//! reached the client nothing can fall back any more, so an upstream failure, the
//! total timeout or a silence longer than the target's `stream_idle_timeout_ms` ends
//! the stream with an SSE error event and no `[DONE]`.
//!
//! Dropping the relay (the client went away) drops the upstream body, which closes
//! the upstream connection at once: nobody pays for tokens nobody reads; the request
//! then ends as abandoned, charged for what was relayed.

use super::end::{CLIENT_CLOSED, Routed};
use super::events::EventStream;
use crate::policy::Ending;
use crate::protocol::Protocol;
use crate::usage::Usage;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

const TOTAL_TIMEOUT: &str = "the response did not finish before the total timeout";

pub(crate) struct Relay {
    held: Option<Bytes>,
    upstream: EventStream,
    /// Wakes the relay while the upstream is silent: due at the total deadline or at
    /// the end of the allowed silence, whichever is first, and moved forward only when
    /// it fires early (so a frame costs a clock read, not a timer reset).
    timer: Pin<Box<Sleep>>,
    total_deadline: Instant,
    /// The longest silence allowed.
    idle: Duration,
    /// When the last frame arrived.
    last_frame: Instant,
    /// The upstream's status, passed on to the client.
    status: u16,
    /// `None` once the stream has ended and the request with it.
    routed: Option<Routed>,
}

impl Relay {
    pub fn new(
        held: Bytes,
        upstream: EventStream,
        total_deadline: Instant,
        idle: Duration,
        status: u16,
        routed: Routed,
    ) -> Self {
        let now = Instant::now();
        Relay {
            held: Some(held),
            upstream,
            timer: Box::pin(tokio::time::sleep_until(total_deadline.min(now + idle))),
            total_deadline,
            idle,
            last_frame: now,
            status,
            routed: Some(routed),
        }
    }

    /// The upstream is silent: waits for it, the total timeout, or the end of the
    /// silence allowed, whichever comes first.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let now = Instant::now();
            if now >= self.total_deadline {
                return self.fail(TOTAL_TIMEOUT);
            }
            let silent_until = self.last_frame + self.idle;
            if now >= silent_until {
                let why = format!(
                    "the upstream sent nothing for {} ms (stream_idle_timeout_ms)",
                    self.idle.as_millis()
                );
                return self.fail(&why);
            }
            self.timer
                .as_mut()
                .reset(silent_until.min(self.total_deadline));
        }
    }

    /// Ends the stream with an error event: the request ends interrupted.
    fn fail(&mut self, message: &str) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Some(mut routed) = self.routed.take() else {
            return Poll::Ready(None);
        };
        let target = routed
            .answering_target()
            .map_or("?", |t| t.config.id.as_str());
        tracing::warn!(request_id = %routed.request_id, target, why = message, "upstream failed mid-stream");
        routed.end(Ending::Interrupted, 502, None);
        let message = format!("The upstream failed mid-stream: {message}");
        let event = match routed.protocol {
            Protocol::Chat => {
                let event = serde_json::json!({
                    "error": {"message": message, "type": "upstream_error", "param": null, "code": "stream_interrupted"}
                });
                format!("data: {event}\n\n")
            }
            // Anthropic's own mid-stream error event.
            Protocol::Messages => format!(
                "event: error\ndata: {}\n\n",
                String::from_utf8_lossy(&crate::anthropic::error_body(502, &message))
            ),
            // The Responses API's, numbered after the last event relayed.
            Protocol::Responses => {
                let sequence = self.upstream.scanner.sequence.map_or(0, |n| n + 1);
                let event = serde_json::json!({
                    "type": "error", "code": "stream_interrupted", "message": message,
                    "param": null, "sequence_number": sequence,
                });
                format!("event: error\ndata: {event}\n\n")
            }
        };
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
    }
}

impl Drop for Relay {
    /// The client went away mid-stream: what was relayed is charged — the upstream's
    /// counts so far where it gave them (a Messages stream's `message_start`), the
    /// estimate where not, and at least one output token per content event relayed —
    /// marked as estimated, since the upstream never said its last word.
    fn drop(&mut self) {
        let Some(mut routed) = self.routed.take() else {
            return;
        };
        let scanner = &self.upstream.scanner;
        let reported = scanner
            .usage
            .unwrap_or(Usage::new(routed.input_estimate, 0));
        let usage = Usage {
            output: reported.output.max(scanner.chunks),
            estimated: true,
            ..reported
        };
        routed.end(Ending::Abandoned, CLIENT_CLOSED, Some(usage));
    }
}

impl Body for Relay {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(held) = this.held.take() {
            return Poll::Ready(Some(Ok(Frame::data(held))));
        }
        if this.routed.is_none() {
            return Poll::Ready(None);
        }
        let polled = match Pin::new(&mut this.upstream).poll_frame(cx) {
            Poll::Ready(polled) => polled,
            Poll::Pending => return this.wait(cx),
        };
        match polled {
            Some(Ok(frame)) => {
                // A stream that never pauses must still end at the total timeout.
                let now = Instant::now();
                if now >= this.total_deadline {
                    return this.fail(TOTAL_TIMEOUT);
                }
                this.last_frame = now;
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => this.fail(&e.to_string()),
            None if this.upstream.scanner.done => {
                if let Some(mut routed) = this.routed.take() {
                    let scanner = &this.upstream.scanner;
                    let usage = scanner.usage.or(Some(Usage::estimated(
                        routed.input_estimate,
                        scanner.chunks,
                    )));
                    routed.finish_reasons(&scanner.finish_reasons);
                    routed.end(Ending::Completed, this.status, usage);
                }
                Poll::Ready(None)
            }
            None => this.fail("the stream ended without [DONE]"),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.routed.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
