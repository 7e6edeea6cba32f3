//! The body of a streamed response: what the upstream sends passes through byte for
//! byte; when the stream ends, the attempt is accounted. After the first byte has
//! reached the client nothing can fall back any more, so an upstream failure (or the
//! total timeout) ends the stream with an SSE error event and no `[DONE]`.
//!
//! Dropping the relay (the client went away) drops the upstream body, which closes
//! the upstream connection at once: nobody pays for tokens nobody reads; the request
//! then ends as abandoned (see [`Routed`]'s drop).

use super::end::Routed;
use super::events::EventStream;
use crate::policy::Ending;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

pub(crate) struct Relay {
    held: Option<Bytes>,
    upstream: EventStream,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// The upstream's status, passed on to the client.
    status: u16,
    /// `None` once the stream has ended and the request with it.
    routed: Option<Routed>,
}

impl Relay {
    pub fn new(
        held: Bytes,
        upstream: EventStream,
        total_deadline: tokio::time::Instant,
        status: u16,
        routed: Routed,
    ) -> Self {
        Relay {
            held: Some(held),
            upstream,
            deadline: Box::pin(tokio::time::sleep_until(total_deadline)),
            status,
            routed: Some(routed),
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
        let event = serde_json::json!({
            "error": {"message": format!("The upstream failed mid-stream: {message}"), "type": "upstream_error", "param": null, "code": "stream_interrupted"}
        });
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!(
            "data: {event}\n\n"
        ))))))
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
        if this.deadline.as_mut().poll(cx).is_ready() {
            return this.fail("the response did not finish before the total timeout");
        }
        match ready!(Pin::new(&mut this.upstream).poll_frame(cx)) {
            Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
            Some(Err(e)) => this.fail(&e.to_string()),
            None if this.upstream.scanner.done => {
                if let Some(mut routed) = this.routed.take() {
                    let scanner = &this.upstream.scanner;
                    let usage = scanner
                        .usage
                        .or(Some((routed.input_estimate, scanner.chunks)));
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
