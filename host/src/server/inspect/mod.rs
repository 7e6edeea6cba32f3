//! A look at a client connection's raw bytes before hyper parses them, for what hyper
//! hides or does not bound: HTTP/1 heads with ambiguous body framing ([`http1`]) and
//! HTTP/2 control-frame floods ([`http2`]).
//!
//! [`Inspected`] wraps the connection's stream (after TLS, so it sees plain HTTP);
//! each read is passed on unchanged after the scanner has followed it. What it finds
//! is left in the connection's [`Findings`] for the service to act on: an ambiguous
//! head is answered 400 by the service when its request arrives, while a flood ends
//! the connection at once (the read fails).

mod http1;
mod http2;

use http1::Http1Scan;
use http2::{Http2Scan, PREFACE};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A head whose body framing two parsers could read differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finding {
    /// `Content-Length` and `Transfer-Encoding` together.
    LengthAndChunked = 1,
    /// `Content-Length` more than once.
    RepeatedLength = 2,
}

impl Finding {
    fn from_u8(v: u8) -> Option<Finding> {
        match v {
            1 => Some(Finding::LengthAndChunked),
            2 => Some(Finding::RepeatedLength),
            _ => None,
        }
    }

    /// What the client is told.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Finding::LengthAndChunked => {
                "The request has both Content-Length and Transfer-Encoding; send one of them."
            }
            Finding::RepeatedLength => "The request has Content-Length more than once.",
        }
    }
}

/// What the scanner of one connection found, read by its service.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Number (from 1) of the first HTTP/1 request with an ambiguous head; 0: none.
    request: AtomicU64,
    /// Its [`Finding`].
    finding: AtomicU8,
    /// Whether the client went over its HTTP/2 control-frame budget. Kept here because
    /// the read error that ends the connection reaches hyper through h2, which keeps
    /// only its message.
    flooded: AtomicBool,
}

impl Findings {
    /// Whether HTTP/1 request number `n` (from 1) of the connection had an ambiguous
    /// head. HTTP/1 requests reach the service in the order their heads arrived, and
    /// a head is scanned before hyper reads it, so the answer is ready when asked.
    pub(crate) fn ambiguous(&self, n: u64) -> Option<Finding> {
        if self.request.load(Ordering::Acquire) != n {
            return None;
        }
        Finding::from_u8(self.finding.load(Ordering::Relaxed))
    }

    /// Whether the connection ended for an HTTP/2 control-frame flood.
    pub(crate) fn flooded(&self) -> bool {
        self.flooded.load(Ordering::Relaxed)
    }

    fn record(&self, n: u64, finding: Finding) {
        self.finding.store(finding as u8, Ordering::Relaxed);
        self.request.store(n, Ordering::Release);
    }
}

/// Which protocol the scanner follows.
#[derive(Debug)]
enum Scan {
    /// The first bytes, until they show the HTTP/2 preface or not.
    Undecided {
        seen: usize,
    },
    Http1(Http1Scan),
    Http2(Http2Scan),
}

/// Limits the scanners need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanLimits {
    /// Largest HTTP/1 head worth following (hyper refuses larger ones).
    pub max_head: usize,
    /// HTTP/2 control frames a second.
    pub control_frames_per_sec: u32,
}

/// A client stream whose reads are scanned on their way to hyper.
pub(crate) struct Inspected<S> {
    io: S,
    scan: Scan,
    limits: ScanLimits,
    findings: std::sync::Arc<Findings>,
}

/// The error a read fails with when a client floods HTTP/2 control frames.
#[derive(Debug, thiserror::Error)]
#[error("the client sent more HTTP/2 control frames than its budget")]
pub(crate) struct ControlFrameFlood;

impl<S> Inspected<S> {
    pub(crate) fn new(io: S, limits: ScanLimits, findings: std::sync::Arc<Findings>) -> Self {
        Inspected {
            io,
            scan: Scan::Undecided { seen: 0 },
            limits,
            findings,
        }
    }

    /// Follows `bytes`; false when the connection must end.
    fn follow(&mut self, mut bytes: &[u8]) -> bool {
        if let Scan::Undecided { seen } = &mut self.scan {
            let want = (PREFACE.len() - *seen).min(bytes.len());
            if bytes[..want] != PREFACE[*seen..*seen + want] {
                // Not HTTP/2: the HTTP/1 scanner takes it from the first byte.
                let mut scan = Http1Scan::new(self.limits.max_head);
                let head = &PREFACE[..*seen];
                let found = scan.feed(head).or_else(|| scan.feed(bytes));
                self.scan = Scan::Http1(scan);
                if let Some((n, finding)) = found {
                    self.findings.record(n, finding);
                }
                return true;
            }
            *seen += want;
            bytes = &bytes[want..];
            if *seen < PREFACE.len() {
                return true;
            }
            self.scan = Scan::Http2(Http2Scan::new(self.limits.control_frames_per_sec));
        }
        match &mut self.scan {
            Scan::Undecided { .. } => true,
            Scan::Http1(scan) => {
                if let Some((n, finding)) = scan.feed(bytes) {
                    self.findings.record(n, finding);
                }
                true
            }
            Scan::Http2(scan) => scan.feed(bytes),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Inspected<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && !this.follow(&buf.filled()[before..])
        {
            this.findings.flooded.store(true, Ordering::Relaxed);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                ControlFrameFlood,
            )));
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inspected<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn inspected() -> Inspected<()> {
        let limits = ScanLimits {
            max_head: 1 << 16,
            control_frames_per_sec: 1,
        };
        Inspected::new((), limits, Arc::new(Findings::default()))
    }

    #[test]
    fn the_preface_decides_the_protocol_even_split_byte_by_byte() {
        let mut s = inspected();
        for b in PREFACE {
            assert!(s.follow(&[*b]));
        }
        assert!(matches!(s.scan, Scan::Http2(_)));
        let ping = [0, 0, 8, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(s.follow(&ping) && s.follow(&ping));
        assert!(!s.follow(&ping), "over budget");

        // "P" then not the preface: HTTP/1, with the "P" included.
        let mut s = inspected();
        assert!(s.follow(b"P"));
        assert!(s.follow(b"OST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"));
        assert_eq!(s.findings.ambiguous(1), Some(Finding::RepeatedLength));
        assert_eq!(s.findings.ambiguous(2), None);
    }
}
