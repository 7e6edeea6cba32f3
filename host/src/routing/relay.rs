//! The body of a streamed response: what the upstream sends passes through byte for
//! byte; when the stream ends, the attempt is accounted. After the first byte has
//! reached the client nothing can fall back any more, so an upstream failure (or the
//! total timeout) ends the stream with an SSE error event and no `[DONE]`.
//!
//! Dropping the relay (the client went away) drops the upstream body, which closes
//! the upstream connection at once: nobody pays for tokens nobody reads.

use super::completion::Completion;
use super::scanner::StreamScanner;
use crate::provider::UpstreamBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

pub(crate) struct Relay {
    held: Option<Bytes>,
    upstream: UpstreamBody,
    deadline: Pin<Box<tokio::time::Sleep>>,
    scanner: StreamScanner,
    /// `None` once the stream has ended and been accounted.
    completion: Option<Completion>,
}

impl Relay {
    pub fn new(
        held: Bytes,
        upstream: UpstreamBody,
        scanner: StreamScanner,
        total_deadline: tokio::time::Instant,
        completion: Completion,
    ) -> Self {
        Relay {
            held: Some(held),
            upstream,
            deadline: Box::pin(tokio::time::sleep_until(total_deadline)),
            scanner,
            completion: Some(completion),
        }
    }

    /// Ends the stream with an error event, accounting the attempt as failed.
    fn fail(&mut self, message: &str) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Some(completion) = self.completion.take() else {
            return Poll::Ready(None);
        };
        completion.failed_midstream(message);
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
        if this.completion.is_none() {
            return Poll::Ready(None);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return this.fail("the response did not finish before the total timeout");
        }
        match ready!(Pin::new(&mut this.upstream).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    this.scanner.feed(&data);
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                // Trailers carry nothing a chat client needs.
                Err(_) => Poll::Ready(Some(Ok(Frame::data(Bytes::new())))),
            },
            Some(Err(e)) => this.fail(&e.to_string()),
            None if this.scanner.done => {
                if let Some(completion) = this.completion.take() {
                    completion.succeeded(&this.scanner);
                }
                Poll::Ready(None)
            }
            None => this.fail("the stream ended without [DONE]"),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.completion.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
