//! Holding a streamed answer back for the policy's review (`[[tenants]]
//! review_streams`): until it is complete, or until its first content chunks have
//! arrived. Nothing of it has reached the client while it is held, so a stream that
//! fails meanwhile falls back like any attempt that failed before its first byte.

use super::attempt::Outcome;
use super::events::EventStream;
use crate::config::ReviewStreams;
use crate::signals::AttemptResult;
use bytes::BytesMut;
use http_body_util::BodyExt;
use std::time::Duration;
use tokio::time::{Instant, timeout_at};

/// The most of a stream held back, in bytes (as for a JSON answer).
const MAX_HELD: usize = 32 << 20;

/// Reads on from a stream whose first content has arrived, as `mode` says; the
/// stream's bytes so far come back in `held` (the rest, if any, is still in `stream`),
/// or a failure to fall back from.
pub(super) async fn hold(outcome: Outcome, mode: ReviewStreams, idle: Duration) -> Outcome {
    let Outcome::Streaming {
        parts,
        held,
        mut stream,
        ttft,
        total_deadline,
    } = outcome
    else {
        return outcome;
    };
    let enough = |stream: &EventStream| match mode {
        ReviewStreams::Off => true,
        ReviewStreams::Hold => false,
        ReviewStreams::FirstTokens(n) => stream.scanner.chunks >= n,
    };
    let mut bytes = BytesMut::from(&held[..]);
    let failed = |why: String| Outcome::Retry {
        cause: "stream_failed",
        why,
        result: AttemptResult::Failure,
    };
    while !enough(&stream) {
        let now = Instant::now();
        match timeout_at(total_deadline.min(now + idle), stream.frame()).await {
            Err(_) if Instant::now() >= total_deadline => {
                return failed("the response did not finish before the total timeout".into());
            }
            Err(_) => {
                return failed(format!(
                    "the upstream sent nothing for {} ms (stream_idle_timeout_ms)",
                    idle.as_millis()
                ));
            }
            Ok(None) if stream.scanner.done && stream.scanner.error.is_none() => break,
            Ok(None) => return failed("the stream ended without [DONE]".into()),
            Ok(Some(Err(e))) => return failed(format!("stream failed while held: {e}")),
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    bytes.extend_from_slice(data);
                }
                if let Some(error) = &stream.scanner.error {
                    return failed(format!("stream reported an error while held: {error}"));
                }
                if bytes.len() > MAX_HELD {
                    return failed(format!("the stream passed {MAX_HELD} bytes while held"));
                }
            }
        }
    }
    Outcome::Streaming {
        parts,
        held: bytes.freeze(),
        stream,
        ttft,
        total_deadline,
    }
}
