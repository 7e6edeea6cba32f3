//! Connections: the accept loop, the per-connection task, and the socket wrapper that
//! can end a connection with a TCP reset.

use super::handler::handle;
use super::reply::Reply;
use super::{Recorded, Wire};
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

pub(super) struct Shared {
    pub(super) wire: Wire,
    pub(super) script: Mutex<Script>,
    pub(super) requests: Mutex<Vec<Recorded>>,
    pub(super) cancelled: AtomicUsize,
}

pub(super) struct Script {
    pub(super) queue: VecDeque<Reply>,
    pub(super) default: Reply,
}

/// Locks, ignoring poisoning: a panicking test thread must not turn every later request
/// into a second panic inside the server.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spawns hyper's background futures (h2 streams) so that they end with the server,
/// rather than outliving it as plain `tokio::spawn` would.
#[derive(Clone)]
struct ScopedExecutor(watch::Receiver<()>);

impl<F> hyper::rt::Executor<F> for ScopedExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let mut shutdown = self.0.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    // Best effort: without it events would still arrive, only later.
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(serve_connection(tcp, shared.clone(), shutdown.clone()));
                }
                // E.g. out of file descriptors under a load test: back off instead of
                // spinning, the condition may clear when connections close.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn serve_connection(tcp: TcpStream, shared: Arc<Shared>, mut shutdown: watch::Receiver<()>) {
    let kill = Arc::new(Kill::default());
    let socket = Socket {
        tcp,
        kill: kill.clone(),
    };
    let service = {
        let kill = kill.clone();
        hyper::service::service_fn(move |req| handle(shared.clone(), kill.clone(), req))
    };
    // The auto builder detects the h2 preface, so one port serves HTTP/1.1 and h2c.
    let builder = auto::Builder::new(ScopedExecutor(shutdown.clone()));
    let connection = builder.serve_connection(TokioIo::new(socket), service);
    tokio::select! {
        // Connection errors (client gone, aborted bodies) are the expected end of many
        // tests; there is nobody to report them to.
        _ = connection => {}
        // Dropping the connection drops the socket, which then closes with a reset.
        _ = kill.notify.notified() => {}
        _ = shutdown.changed() => {}
    }
}

/// Asks the connection task to drop the connection with a TCP reset.
#[derive(Default)]
pub(super) struct Kill {
    pub(super) reset: AtomicBool,
    pub(super) notify: Notify,
}

impl Kill {
    pub(super) fn reset_connection(&self) {
        self.reset.store(true, Ordering::SeqCst);
        // notify_one keeps a permit if the connection task is not waiting right now.
        self.notify.notify_one();
    }
}

/// The accepted TCP stream. It exists to reach the socket at the moment it is dropped:
/// hyper owns the I/O object and gives no access to it, and SO_LINGER=0 must be set on
/// that drop only (set earlier, an ordinary close would discard unsent bytes, which
/// would spoil truncation tests that expect the bytes before the cut to arrive).
struct Socket {
    tcp: TcpStream,
    kill: Arc<Kill>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        if self.kill.reset.load(Ordering::SeqCst) {
            // Zero linger makes close() send RST instead of FIN. If it fails the client
            // still sees the connection close without a response.
            let _ = self.tcp.set_zero_linger();
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Counts a cancellation when dropped while armed: created when a scripted response
/// starts, disarmed once its last byte (or an intended abort) is handed to hyper.
pub(super) struct CancelGuard(pub(super) Option<Arc<Shared>>);

impl CancelGuard {
    pub(super) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}
