//! An upstream's stream, in the client's protocol, as the client will see it: cut into complete
//! events once, each event scanned (content, `[DONE]`, usage, errors) and its model
//! renamed, every other byte passed on as it came. An event that is not a JSON chunk
//! fails the stream: before content the attempt falls back, after it the client gets
//! an error event.
//!
//! Everything a frame completes goes out together, so one upstream frame costs one
//! buffer, one scan per event and one write to the client. An event is held only
//! until its end arrives (upstreams write whole events, so this rarely waits), and at
//! most [`crate::provider::sse::MAX_EVENT_BYTES`] of it: past that the stream fails.

use super::model_name;
use super::scanner::StreamScanner;
use crate::protocol::Protocol;
use crate::provider::sse::EventFramer;
use crate::provider::{UpstreamBody, UpstreamError};
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

pub(crate) struct EventStream {
    body: UpstreamBody,
    framer: EventFramer,
    /// The served target's model name, escaped for a JSON string once.
    model: Bytes,
    /// The events completed by the current frame, renamed.
    out: BytesMut,
    /// What the events seen so far said.
    pub scanner: StreamScanner,
    /// The upstream body has ended.
    ended: bool,
}

impl EventStream {
    pub fn new(body: UpstreamBody, model: &str, protocol: Protocol) -> Self {
        EventStream {
            body,
            framer: EventFramer::default(),
            model: Bytes::from(model_name::escaped(model)),
            out: BytesMut::new(),
            scanner: StreamScanner::new(protocol),
            ended: false,
        }
    }
}

impl Body for EventStream {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let this = self.get_mut();
        while !this.ended {
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers carry nothing a chat client needs
                    };
                    this.framer.push(&data);
                    loop {
                        let event = match this.framer.next_event() {
                            Ok(Some(event)) => event,
                            Ok(None) => break,
                            Err(e) => {
                                return Poll::Ready(Some(Err(UpstreamError::Body(e.to_string()))));
                            }
                        };
                        this.scanner.scan(&event.fields());
                        if let Some(why) = this.scanner.invalid.take() {
                            return Poll::Ready(Some(Err(UpstreamError::Body(why))));
                        }
                        model_name::rewrite_event(&event.bytes, &this.model, &mut this.out);
                    }
                    if !this.out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(this.out.split().freeze()))));
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => this.ended = true,
            }
        }
        // An unfinished last event goes on as it came: it is not an event, so it says
        // nothing, but the bytes are the upstream's.
        let rest = this.framer.take_rest();
        Poll::Ready((!rest.is_empty()).then(|| Ok(Frame::data(rest.freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.framer.pending_bytes() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    /// The stream the client gets when the upstream sends `frames`, frame by frame.
    async fn relay(frames: &[&'static [u8]], model: &str) -> (Vec<Bytes>, StreamScanner) {
        let frames: Vec<Result<Frame<Bytes>, UpstreamError>> = frames
            .iter()
            .map(|f| Ok(Frame::data(Bytes::from_static(f))))
            .collect();
        let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
        let mut stream = EventStream::new(body, model, Protocol::Chat);
        let mut out = Vec::new();
        while let Some(frame) = stream.frame().await {
            out.push(frame.unwrap().into_data().unwrap());
        }
        (out, stream.scanner)
    }

    #[tokio::test]
    async fn events_are_renamed_scanned_and_sent_once_complete() {
        let (out, scanner) = relay(
            &[
                b"data: {\"model\":\"up\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"mo",
                b"del\":\"up\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\r\n\r\n",
                b": keep-alive\n\n",
                b"data: [DONE]\n\n",
            ],
            "small",
        )
        .await;
        assert_eq!(
            out,
            [
                &b"data: {\"model\":\"small\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"[..],
                b"data: {\"model\":\"small\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\r\n\r\n",
                b": keep-alive\n\n",
                b"data: [DONE]\n\n",
            ]
        );
        assert!(scanner.content && scanner.done);
        assert_eq!(scanner.usage, Some(crate::usage::Usage::new(3, 1)));
    }

    #[tokio::test]
    async fn an_unfinished_last_event_passes_unread() {
        let (out, scanner) = relay(&[b"data: [DONE]"], "m").await;
        assert_eq!(out, [&b"data: [DONE]"[..]]);
        assert!(!scanner.done);
    }

    #[tokio::test]
    async fn an_event_that_is_not_json_fails_the_stream() {
        let body = StreamBody::new(futures_util::stream::iter([Ok::<_, UpstreamError>(
            Frame::data(Bytes::from_static(b"data: <!doctype html>\n\n")),
        )]))
        .boxed();
        let mut stream = EventStream::new(body, "m", Protocol::Chat);
        let error = stream.frame().await.unwrap().unwrap_err();
        assert!(error.to_string().contains("not a JSON chunk"), "{error}");
    }

    #[tokio::test]
    async fn an_endless_event_fails_the_stream() {
        let big: &'static [u8] = Box::leak(vec![b'x'; 600 * 1024].into_boxed_slice());
        let frames: Vec<Result<Frame<Bytes>, UpstreamError>> = [&b"data: "[..], big, big]
            .iter()
            .map(|f| Ok(Frame::data(Bytes::from_static(f))))
            .collect();
        let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
        let mut stream = EventStream::new(body, "m", Protocol::Chat);
        let error = stream.frame().await.unwrap().unwrap_err();
        assert!(error.to_string().contains("exceeds"), "{error}");
    }
}
