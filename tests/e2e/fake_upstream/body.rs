//! The response body: planned as pieces, cut by the scripted fault, then paced.

use super::reply::Fault;
use super::server::CancelGuard;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::Value;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

/// The error a body yields to make hyper abort the connection (HTTP/1.1: close without
/// the chunked terminator or before Content-Length is reached; h2: RST_STREAM).
#[derive(Debug)]
pub(super) struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fake upstream aborted the response on purpose")
    }
}

impl std::error::Error for Aborted {}

pub(super) enum Piece {
    Data(Bytes),
    Abort,
    /// Sends nothing more, ever (the connection stays open).
    Stall,
    /// Sends these bytes again and again (after the interval each time), forever.
    Repeat(Bytes),
}

/// A response body that paces itself: each piece becomes one frame, after the first
/// delay or the interval. Timing inside the body (rather than a producer task feeding a
/// channel) keeps the waits real while leaving nothing running once hyper drops it.
pub(super) struct ReplyBody {
    pub(super) pieces: VecDeque<Piece>,
    pub(super) wait: Option<Pin<Box<tokio::time::Sleep>>>,
    pub(super) interval: Duration,
    pub(super) exact_len: Option<u64>,
    pub(super) abort_grace_done: bool,
    pub(super) guard: CancelGuard,
}

/// How long a body pauses before an intended abort (see `ReplyBody::poll_frame`).
const ABORT_GRACE: Duration = Duration::from_millis(20);

impl ReplyBody {
    pub(super) fn new(
        pieces: Vec<Piece>,
        first_delay: Duration,
        interval: Duration,
        exact_len: Option<u64>,
    ) -> Self {
        ReplyBody {
            pieces: pieces.into(),
            wait: (!first_delay.is_zero()).then(|| Box::pin(tokio::time::sleep(first_delay))),
            interval,
            exact_len,
            abort_grace_done: false,
            guard: CancelGuard(None),
        }
    }

    /// A body sent at once, not counted as a scripted response (404s, validation 400s).
    pub(super) fn full(bytes: Bytes) -> Self {
        let len = bytes.len() as u64;
        ReplyBody::new(
            vec![Piece::Data(bytes)],
            Duration::ZERO,
            Duration::ZERO,
            Some(len),
        )
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let this = self.get_mut();
        loop {
            if let Some(wait) = this.wait.as_mut() {
                ready!(wait.as_mut().poll(cx));
                this.wait = None;
            }
            if matches!(this.pieces.front(), Some(Piece::Abort)) && !this.abort_grace_done {
                // On a body error hyper drops what it has not written yet: HTTP/1 closes
                // without flushing its buffer (the head and earlier chunks too, when they
                // were all polled at once), h2 clears the stream's send queue. Pausing
                // first lets the connection flush everything before the cut.
                this.abort_grace_done = true;
                this.wait = Some(Box::pin(tokio::time::sleep(ABORT_GRACE)));
                continue;
            }
            break;
        }
        if matches!(this.pieces.front(), Some(Piece::Stall)) {
            return Poll::Pending; // never woken: the stall lasts until the client leaves
        }
        if let Some(Piece::Repeat(bytes)) = this.pieces.front() {
            let bytes = bytes.clone();
            if !this.interval.is_zero() {
                this.wait = Some(Box::pin(tokio::time::sleep(this.interval)));
            }
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        match this.pieces.pop_front() {
            None => {
                this.guard.disarm();
                Poll::Ready(None)
            }
            Some(Piece::Data(bytes)) => {
                if this.pieces.is_empty() {
                    // hyper may never poll again once a Content-Length is satisfied.
                    this.guard.disarm();
                } else if !this.interval.is_zero() {
                    this.wait = Some(Box::pin(tokio::time::sleep(this.interval)));
                }
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Some(Piece::Abort) => {
                this.guard.disarm();
                Poll::Ready(Some(Err(Aborted)))
            }
            Some(Piece::Stall | Piece::Repeat(_)) => unreachable!("handled above"),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        self.exact_len
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// A body before faults are applied: stream events split into the opening events, one
/// event per content piece, and the closing events; a JSON body is one piece.
pub(super) struct Planned {
    pub(super) stream: bool,
    pub(super) content_type: &'static str,
    pub(super) head: Vec<Bytes>,
    pub(super) pieces: Vec<Bytes>,
    pub(super) tail: Vec<Bytes>,
}

impl Planned {
    pub(super) fn json(value: Value) -> Planned {
        Planned {
            stream: false,
            content_type: "application/json",
            head: Vec::new(),
            pieces: vec![Bytes::from(value.to_string())],
            tail: Vec::new(),
        }
    }

    pub(super) fn sse(head: Vec<String>, pieces: Vec<String>, tail: Vec<String>) -> Planned {
        let bytes = |v: Vec<String>| v.into_iter().map(Bytes::from).collect();
        Planned {
            stream: true,
            content_type: "text/event-stream",
            head: bytes(head),
            pieces: bytes(pieces),
            tail: bytes(tail),
        }
    }
}

/// Turns a planned body into the pieces actually sent, and the Content-Length to
/// announce (JSON bodies announce their full length even when cut, as a server that
/// dies mid-write would have).
pub(super) fn apply_fault(planned: Planned, fault: Fault) -> (Vec<Piece>, Option<u64>) {
    let Planned {
        stream,
        head,
        mut pieces,
        tail,
        ..
    } = planned;
    if !stream {
        let whole = pieces.pop().unwrap_or_default();
        let len = Some(whole.len() as u64);
        return match fault {
            Fault::FailBeforeContent => (vec![Piece::Abort], len),
            Fault::TruncateAfter(_) => (
                vec![Piece::Data(whole.slice(..whole.len() / 2)), Piece::Abort],
                len,
            ),
            Fault::StallAfter(_) => (vec![Piece::Stall], len),
            // A body with no end: far past any limit on answers read whole.
            Fault::Endless => (vec![Piece::Repeat(Bytes::from(vec![b' '; 64 << 10]))], None),
            Fault::None | Fault::ResetBeforeHeaders => (vec![Piece::Data(whole)], len),
        };
    }
    let data = |v: Vec<Bytes>| v.into_iter().map(Piece::Data);
    let out: Vec<Piece> = match fault {
        Fault::FailBeforeContent => data(head).take(1).chain([Piece::Abort]).collect(),
        Fault::TruncateAfter(n) => data(head)
            .chain(data(pieces).take(n))
            .chain([Piece::Abort])
            .collect(),
        Fault::StallAfter(n) => data(head)
            .chain(data(pieces).take(n))
            .chain([Piece::Stall])
            .collect(),
        Fault::Endless => {
            let first = pieces.first().cloned().unwrap_or_default();
            data(head).chain([Piece::Repeat(first)]).collect()
        }
        Fault::None | Fault::ResetBeforeHeaders => {
            data(head).chain(data(pieces)).chain(data(tail)).collect()
        }
    };
    (out, None)
}
