//! Replacing a running gateway without refusing a connection: the old process hands
//! its listening sockets to the new one.
//!
//! A gateway with `server.handover_socket` set offers its listeners on that Unix
//! socket. A replacement started with `signalbox serve --take-over` connects, receives
//! the sockets themselves (file descriptors passed with `SCM_RIGHTS`), starts on them
//! (policies compiled, certificates loaded) and then says it serves; only then does
//! the old process stop accepting and drain, as on SIGTERM. The listening sockets are
//! never closed in between: while both processes run they accept from the same queue,
//! so no connection is refused or reset, and a replacement that fails to start changes
//! nothing (the old process notices the closed hand-over connection and keeps
//! serving). The old process keeps the hand-over connection open until it has drained
//! and written its state, so the new one can tell when it has gone.
//!
//! The messages are JSON lines. Old to new, with the descriptors: `{"pid", "admin"}`
//! (`admin`: whether an admin listener follows the API's). New to old: `{"pid",
//! "serving": true}`. Only a process of the same user may take the sockets: the socket
//! file is private to its owner, and the peer's credentials are checked as well.

use crate::config::Config;
use crate::running::Listeners;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The longest message either side sends.
const MAX_MESSAGE: usize = 1024;

/// What the old process tells the new one, beside the descriptors.
#[derive(Serialize, Deserialize)]
struct Offered {
    pid: u32,
    admin: bool,
}

/// What the new process tells the old one once it serves.
#[derive(Serialize, Deserialize)]
struct Serving {
    pid: u32,
    serving: bool,
}

/// A running gateway's offer of its listeners, open until dropped.
pub struct Offer {
    replaced: Option<oneshot::Receiver<Successor>>,
    task: JoinHandle<()>,
    socket_file: SocketFile,
}

/// The process that took the listeners over and serves on them now. Dropping this
/// (at the end of the old process) tells it the old process has stopped.
pub struct Successor {
    /// Its process id.
    pub pid: u32,
    _connection: UnixStream,
}

impl Offer {
    /// Offers `sockets` at `path`. A socket file left there by
    /// a gateway that has stopped is replaced; one a live gateway answers on is not,
    /// unless `replacing` (this gateway took that one's listeners over).
    pub fn start(path: &Path, sockets: Sockets, replacing: bool) -> anyhow::Result<Offer> {
        let (socket_file, listener) = SocketFile::bind(path, replacing)?;
        let (done, replaced) = oneshot::channel();
        let task = tokio::spawn(offer(listener, sockets, done));
        Ok(Offer {
            replaced: Some(replaced),
            task,
            socket_file,
        })
    }

    /// Resolves once a successor serves on the listeners (never, if none does).
    pub async fn replaced(&mut self) -> Successor {
        match self.replaced.take() {
            Some(replaced) => match replaced.await {
                Ok(successor) => successor,
                Err(_) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }
}

impl Drop for Offer {
    fn drop(&mut self) {
        // The duplicates go with the task: a gateway shutting down must not keep its
        // listening sockets open (connections would wait in their queues for nobody).
        self.task.abort();
        self.socket_file.remove_if_ours();
    }
}

/// A gateway's listening sockets, duplicated before its listeners move into the
/// server: what an [`Offer`] hands over.
pub struct Sockets {
    api: OwnedFd,
    admin: Option<OwnedFd>,
}

impl Sockets {
    /// Duplicates of `listeners`' sockets.
    pub fn of(listeners: &Listeners) -> std::io::Result<Sockets> {
        Ok(Sockets {
            api: listeners.api.as_fd().try_clone_to_owned()?,
            admin: match &listeners.admin {
                Some(admin) => Some(admin.as_fd().try_clone_to_owned()?),
                None => None,
            },
        })
    }
}

/// Serves hand-over requests one at a time until one succeeds.
async fn offer(listener: UnixListener, sockets: Sockets, done: oneshot::Sender<Successor>) {
    loop {
        let connection = match listener.accept().await {
            Ok((connection, _)) => connection,
            Err(e) => {
                tracing::warn!(error = %e, "hand-over socket: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        match hand_over(connection, &sockets).await {
            Ok(successor) => {
                tracing::info!(
                    successor = successor.pid,
                    "a successor serves on the listeners: draining"
                );
                let _ = done.send(successor);
                return;
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "hand-over abandoned; this gateway keeps serving"
            ),
        }
    }
}

/// Sends the sockets over `connection` and waits for the successor to serve on them.
async fn hand_over(mut connection: UnixStream, sockets: &Sockets) -> anyhow::Result<Successor> {
    let peer = connection.peer_cred()?;
    let me = rustix::process::geteuid().as_raw();
    if peer.uid() != me {
        bail!(
            "refused: the requesting process runs as user {}, this gateway as {me}",
            peer.uid()
        );
    }
    let message = line(&Offered {
        pid: std::process::id(),
        admin: sockets.admin.is_some(),
    })?;
    let mut fds = vec![sockets.api.as_fd()];
    fds.extend(sockets.admin.as_ref().map(|fd| fd.as_fd()));
    connection
        .async_io(Interest::WRITABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
            let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
            control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
            let sent = rustix::net::sendmsg(
                &connection,
                &[IoSlice::new(&message)],
                &mut control,
                rustix::net::SendFlags::NOSIGNAL,
            )?;
            // The message is far smaller than a socket buffer; a short write would
            // mean the peer is not what it claims.
            if sent < message.len() {
                return Err(std::io::Error::other("short write"));
            }
            Ok(())
        })
        .await
        .context("cannot send the listening sockets")?;
    tracing::info!(
        requester = peer.pid(),
        "listening sockets handed over; serving until the successor does"
    );
    let serving: Serving = read_line(&mut connection, Vec::new())
        .await?
        .context("the successor ended before it served")?;
    if !serving.serving {
        bail!("the successor gave up");
    }
    Ok(Successor {
        pid: serving.pid,
        _connection: connection,
    })
}

/// The running gateway a new one takes over from, until the new one serves.
pub struct Predecessor {
    /// Its process id.
    pub pid: u32,
    connection: UnixStream,
}

/// Takes the listening sockets of the gateway offering them at `path`, for `config`:
/// the API's always, the admin API's when both configs have one (otherwise the admin
/// listener is bound afresh, or not at all).
pub async fn take_over(path: &Path, config: &Config) -> anyhow::Result<(Listeners, Predecessor)> {
    let mut connection = UnixStream::connect(path)
        .await
        .with_context(|| format!("no gateway offers its listeners at {}", path.display()))?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut bytes = vec![0u8; MAX_MESSAGE];
    let received = connection
        .async_io(Interest::READABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
            let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
            let received = rustix::net::recvmsg(
                &connection,
                &mut [IoSliceMut::new(&mut bytes)],
                &mut control,
                rustix::net::RecvFlags::CMSG_CLOEXEC,
            )?;
            for message in control.drain() {
                if let rustix::net::RecvAncillaryMessage::ScmRights(received) = message {
                    fds.extend(received);
                }
            }
            Ok(received.bytes)
        })
        .await
        .context("cannot receive the listening sockets")?;
    bytes.truncate(received);
    let offered: Offered = read_line(&mut connection, bytes)
        .await?
        .context("the running gateway closed the hand-over")?;
    let expected = 1 + usize::from(offered.admin);
    if fds.len() != expected {
        bail!(
            "the running gateway sent {} sockets, {expected} expected",
            fds.len()
        );
    }
    let mut fds = fds.into_iter();
    let api = tcp_listener(fds.next(), &config.server.listen, "server.listen")?;
    let admin = match (fds.next(), &config.admin.listen) {
        (Some(fd), Some(listen)) => Some(tcp_listener(Some(fd), listen, "admin.listen")?),
        (None, Some(listen)) => Some(
            TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen} (admin)"))?,
        ),
        (_, None) => None,
    };
    Ok((
        Listeners { api, admin },
        Predecessor {
            pid: offered.pid,
            connection,
        },
    ))
}

impl Predecessor {
    /// Tells the old gateway this one serves (it stops accepting and drains); the
    /// returned future resolves once it has stopped.
    pub async fn serving(mut self) -> anyhow::Result<impl Future<Output = ()> + use<>> {
        let message = line(&Serving {
            pid: std::process::id(),
            serving: true,
        })?;
        self.connection
            .write_all(&message)
            .await
            .context("cannot tell the running gateway this one serves")?;
        Ok(async move {
            // Nothing more is sent: the connection closes when the old process ends.
            let mut sink = [0u8; 64];
            while matches!(self.connection.read(&mut sink).await, Ok(n) if n > 0) {}
        })
    }
}

/// A received listening socket, checked against the address the config names.
fn tcp_listener(fd: Option<OwnedFd>, listen: &str, key: &str) -> anyhow::Result<TcpListener> {
    let fd = fd.context("a listening socket is missing")?;
    let listener = std::net::TcpListener::from(fd);
    let addr = listener
        .local_addr()
        .context("the socket received is not a TCP listener")?;
    // A config naming another fixed address cannot be honoured on a socket taken
    // over: say so rather than serve somewhere the operator did not ask for.
    if let Ok(wanted) = listen.parse::<SocketAddr>()
        && wanted.port() != 0
        && wanted != addr
    {
        bail!(
            "{key} is {wanted}, but the running gateway listens on {addr}; a hand-over keeps the address (stop and start to change it)"
        );
    }
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener)?)
}

fn line(message: &impl Serialize) -> anyhow::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(message)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Reads one JSON line (after `bytes`, already received); `None` at the end of the
/// stream before any byte.
async fn read_line<T: for<'de> Deserialize<'de>>(
    connection: &mut UnixStream,
    mut bytes: Vec<u8>,
) -> anyhow::Result<Option<T>> {
    let mut chunk = [0u8; 256];
    loop {
        if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            return Ok(Some(
                serde_json::from_slice(&bytes[..end]).context("malformed hand-over message")?,
            ));
        }
        if bytes.len() > MAX_MESSAGE {
            bail!("hand-over message too long");
        }
        let n = connection.read(&mut chunk).await?;
        if n == 0 {
            if bytes.is_empty() {
                return Ok(None);
            }
            bail!("hand-over message cut short");
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// The hand-over socket's file, removed at the end only if it is still this
/// process's (a successor binds its own at the same path).
struct SocketFile {
    path: PathBuf,
    inode: (u64, u64),
}

impl SocketFile {
    fn bind(path: &Path, replacing: bool) -> anyhow::Result<(SocketFile, UnixListener)> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if !replacing && std::os::unix::net::UnixStream::connect(path).is_ok() {
                    bail!(
                        "server.handover_socket: a running gateway offers its listeners at {}; start with --take-over to replace it",
                        path.display()
                    );
                }
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot replace {}", path.display()))?;
            }
            Ok(_) => bail!(
                "server.handover_socket: {} exists and is not a socket",
                path.display()
            ),
            Err(_) => {}
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("cannot bind the hand-over socket at {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let meta = std::fs::metadata(path)?;
        let file = SocketFile {
            path: path.to_owned(),
            inode: (meta.dev(), meta.ino()),
        };
        Ok((file, listener))
    }

    fn remove_if_ours(&self) {
        if let Ok(meta) = std::fs::metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.inode
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
