//! Reading a client's request body (`server::read_body`) as hyper hands it over from a
//! connection: every framing (a length, chunks, none), honest or not, under a limit.
//!
//! The request travels over an in-memory connection to a real hyper HTTP/1 server
//! whose handler reads the body with `read_body` and answers with what it read.
//! Properties: a body within the limit arrives byte for byte, however it was framed;
//! a body over the limit is a 413, and a body that cannot be read (a length longer
//! than what was sent, broken chunks) a 400, both in the OpenAI shape; nothing hangs.
//! Raw fuzz bytes are also sent as a whole request: whatever they are, an answer.

use super::CI_TIME;
use crate::openai::{ApiError, full};
use crate::server::{BodyLimit, read_body};
use arbitrary::Unstructured;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longer than any answer takes: past it, a read is stuck.
const HANG: Duration = Duration::from_secs(10);

#[test]
fn body_read() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    bolero::check!(name = "body_read")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            let answer = runtime.block_on(exchange(bytes.to_vec(), 64));
            assert!(answer.is_none_or(|(status, _)| (200..600).contains(&status)));
            runtime.block_on(check_framing(&mut Unstructured::new(bytes)));
        });
}

/// How a body is framed on the wire.
#[derive(Debug)]
enum Framing {
    /// `content-length`, stating `declared` bytes (the truth, or not).
    Length { declared: usize },
    /// `transfer-encoding: chunked`, chunks of the sizes given (cycling), possibly
    /// with a broken size line after `broken_after` chunks.
    Chunked {
        sizes: Vec<u8>,
        broken_after: Option<usize>,
    },
    /// Neither: a request without a body, the bytes left for the next request.
    None,
}

async fn check_framing(u: &mut Unstructured<'_>) {
    let body: Vec<u8> = u.arbitrary().unwrap_or_default();
    let limit = u.int_in_range(0..=body.len() + 4).unwrap_or(0);
    let framing = match u.int_in_range(0..=6u8).unwrap_or(0) {
        0 | 1 => Framing::Length {
            declared: body.len(),
        },
        2 => Framing::Length {
            declared: u.int_in_range(0..=body.len() * 2 + 2).unwrap_or(0),
        },
        3 | 4 => Framing::Chunked {
            sizes: u.arbitrary().unwrap_or_default(),
            broken_after: None,
        },
        5 => Framing::Chunked {
            sizes: u.arbitrary().unwrap_or_default(),
            broken_after: Some(u.int_in_range(0..=4usize).unwrap_or(0)),
        },
        _ => Framing::None,
    };
    let request = request(&body, &framing);
    let Some((status, echoed)) = exchange(request, limit).await else {
        panic!("no answer to a well-formed request ({framing:?})");
    };
    // What the handler should have read, if the framing lets it read anything.
    let readable: Option<&[u8]> = match &framing {
        Framing::Length { declared } if *declared <= body.len() => Some(&body[..*declared]),
        Framing::Length { declared } if *declared > limit => {
            assert_eq!(status, 413, "a declared length over the limit");
            return;
        }
        Framing::Length { .. } => None,
        Framing::Chunked {
            broken_after: None, ..
        } => Some(&body),
        Framing::Chunked { .. } => None,
        Framing::None => Some(b""),
    };
    match readable {
        Some(sent) if sent.len() <= limit => {
            assert_eq!(status, 200, "{framing:?}");
            assert_eq!(echoed, sent, "the body arrives byte for byte");
        }
        Some(_) => assert_eq!(status, 413, "a body over the limit ({framing:?})"),
        None => assert!(
            status == 400 || status == 413,
            "an unreadable body answered {status} ({framing:?})"
        ),
    }
}

fn request(body: &[u8], framing: &Framing) -> Vec<u8> {
    let mut out = b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n".to_vec();
    match framing {
        Framing::Length { declared } => {
            out.extend(format!("content-length: {declared}\r\n\r\n").bytes());
            out.extend_from_slice(body);
        }
        Framing::Chunked {
            sizes,
            broken_after,
        } => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            let mut rest = body;
            let mut i = 0;
            while !rest.is_empty() {
                if *broken_after == Some(i) {
                    out.extend_from_slice(b"zz\r\n");
                }
                let size = sizes
                    .get(i % sizes.len().max(1))
                    .map_or(rest.len(), |s| usize::from(*s).clamp(1, rest.len()));
                out.extend(format!("{size:x}\r\n").bytes());
                out.extend_from_slice(&rest[..size]);
                out.extend_from_slice(b"\r\n");
                rest = &rest[size..];
                i += 1;
            }
            if broken_after.is_some_and(|n| n >= i) {
                out.extend_from_slice(b"zz\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
        Framing::None => {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
        }
    }
    out
}

/// Sends `request` to a hyper server whose handler reads the body with `read_body`
/// (under `limit`) and answers 200 with what it read; the first answer's status and
/// body, or `None` when the server closed without answering.
async fn exchange(request: Vec<u8>, limit: usize) -> Option<(u16, Vec<u8>)> {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let service = service_fn(
        move |request: http::Request<hyper::body::Incoming>| async move {
            let (parts, body) = request.into_parts();
            // A generous deadline: the whole exchange is in memory, so only a hang
            // in the reader could reach it.
            let limit = BodyLimit {
                bytes: limit,
                timeout: Duration::from_secs(10),
            };
            let response = match read_body(body, &parts.headers, limit).await {
                Ok(bytes) => http::Response::new(full(bytes)),
                Err(e) => {
                    check_refusal(&e);
                    e.into_response()
                }
            };
            Ok::<_, Infallible>(response)
        },
    );
    // The client closes its side once the request is sent, so that a body shorter
    // than its stated length ends; the server still answers.
    let serve = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .serve_connection(TokioIo::new(server), service);
    let talk = async move {
        client.write_all(&request).await.ok()?;
        client.shutdown().await.ok()?;
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.ok()?;
        Some(answer)
    };
    let (_, answer) = tokio::time::timeout(HANG, async { tokio::join!(serve, talk) })
        .await
        .expect("the exchange hangs");
    first_response(&answer?)
}

fn check_refusal(e: &ApiError) {
    assert!(e.status == 400 || e.status == 413, "{e:?}");
    assert_eq!(e.kind, "invalid_request_error");
}

/// The status and body of the first response in `answer`.
fn first_response(answer: &[u8]) -> Option<(u16, Vec<u8>)> {
    let text = std::str::from_utf8(answer.get(..12)?).ok()?;
    let status: u16 = text.strip_prefix("HTTP/1.1 ")?.parse().ok()?;
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let body = answer.get(head_end..head_end + length)?;
    Some((status, body.to_vec()))
}
