//! The decision log: an optional JSONL file with one line per routed request — the
//! features the policy saw (sizes and tags; message text only for tenants that opt
//! in), a summary of the target snapshot, the decision and the outcome — for offline
//! replay and debugging.
//!
//! Lines are written by a background thread; the request path only hands over a
//! value. When the writer falls behind, the queue is bounded and a line that does not
//! fit is dropped and counted (this is a debugging aid, unlike the usage ledger).

use crate::policy::{Ending, Role, RouteRequest, TargetSignals};
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

/// Lines waiting for the writer.
const QUEUE: usize = 16 * 1024;

/// One line of the log: what the policy saw, what it answered, how the request ended.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    /// When the decision was made, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The request id.
    pub request_id: String,
    /// The tenant.
    pub tenant: Arc<str>,
    /// The request's features as the policy saw them.
    pub request: RequestFeatures,
    /// Every target's signals at decision time, in policy order.
    pub snapshot: Vec<SnapshotEntry>,
    /// The decision.
    pub decision: DecisionEntry,
    /// The shadow candidate's first choice (a target id), if one decided too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_choice: Option<String>,
    /// How the request ended (set at its end, before the line is written).
    pub outcome: Option<OutcomeEntry>,
}

/// A request's features, without message text unless the tenant allows it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestFeatures {
    /// The model or alias asked for.
    pub model: String,
    /// The host's input-token estimate.
    pub input_tokens: u32,
    /// The output budget asked for.
    pub max_output_tokens: Option<u32>,
    /// Streamed.
    pub stream: bool,
    /// Tools offered.
    pub has_tools: bool,
    /// Number of messages.
    pub message_count: u32,
    /// Characters of message text in all.
    pub message_chars: usize,
    /// Routing metadata pairs, as `[key, value]`.
    pub metadata: Vec<(String, String)>,
    /// The messages, for tenants that log text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<LoggedMessage>>,
}

/// A message's role and text (only for tenants that log text).
#[derive(Debug, Clone, Serialize)]
pub struct LoggedMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub text: Box<str>,
}

/// One target's signals at decision time.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotEntry {
    /// The target id.
    pub target: String,
    /// Its signals.
    #[serde(flatten)]
    pub signals: TargetSignals,
}

/// What the policy answered: a route, a rejection, or an error and the safe route.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionEntry {
    /// The deciding policy, `name@version`.
    pub policy: String,
    /// Target ids to try, in order (a route or the safe route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    /// The policy's reason, or `safe route`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The policy's rejection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Rejection>,
    /// The kind of policy failure that led to the safe route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

/// A rejection as logged.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    /// The status sent.
    pub status: u16,
    /// The message sent.
    pub message: String,
}

/// How the request ended.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeEntry {
    /// The kind of ending.
    pub ending: Ending,
    /// The status returned to the client.
    pub status: u16,
    /// The target whose answer reached the client.
    pub target: Option<String>,
    /// Targets tried without an answer before it (or in all).
    pub fallback_depth: u32,
    /// Those targets' ids, with why each failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// From admission (just before the decision) to the end, ms.
    pub latency_ms: u64,
    /// Time to first token of a stream, ms.
    pub ttft_ms: Option<u64>,
    /// Input tokens.
    pub input_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

impl DecisionRecord {
    /// The start of a record: what the policy saw (`targets` are the ids in policy
    /// order), and the decision. `with_text` adds the messages' text.
    pub fn new(
        tenant: &Arc<str>,
        request: &RouteRequest,
        targets: &[&str],
        signals: &[TargetSignals],
        with_text: bool,
        decision: DecisionEntry,
    ) -> Self {
        let f = request.fields();
        DecisionRecord {
            ts_ms: crate::ledger::now_ms(),
            request_id: f.id.clone(),
            tenant: tenant.clone(),
            request: RequestFeatures {
                model: f.model.clone(),
                input_tokens: f.input_tokens,
                max_output_tokens: f.max_output_tokens,
                stream: f.stream,
                has_tools: f.has_tools,
                message_count: request.message_count(),
                message_chars: request
                    .messages()
                    .iter()
                    .map(|m| m.text.chars().count())
                    .sum(),
                metadata: f.metadata.clone(),
                messages: with_text.then(|| {
                    request
                        .messages()
                        .iter()
                        .map(|m| LoggedMessage {
                            role: m.role,
                            text: m.text.clone(),
                        })
                        .collect()
                }),
            },
            snapshot: targets
                .iter()
                .zip(signals)
                .map(|(id, s)| SnapshotEntry {
                    target: (*id).to_owned(),
                    signals: *s,
                })
                .collect(),
            decision,
            shadow_choice: None,
            outcome: None,
        }
    }
}

/// A running decision log.
pub struct DecisionLog {
    queue: SyncSender<DecisionRecord>,
    dropped: AtomicU64,
}

impl DecisionLog {
    /// Appends to `path` (created if missing).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (queue, lines) = std::sync::mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("signalbox-decision-log".into())
            .spawn(move || write_lines(file, &lines))?;
        Ok(DecisionLog {
            queue,
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues a finished record.
    pub fn write(&self, record: DecisionRecord) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(record)
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Lines are written whole, many at a time: the file is opened for appending, and a
/// write of whole lines is never interleaved with another process's (two gateways
/// share the file while one hands its listeners to the other), which a buffered
/// writer flushing mid-line would allow.
fn write_lines(mut out: std::fs::File, lines: &Receiver<DecisionRecord>) {
    const BATCH_BYTES: usize = 64 << 10;
    let mut batch = Vec::with_capacity(BATCH_BYTES + 4096);
    let mut write = |batch: &mut Vec<u8>| {
        if !batch.is_empty() {
            let _ = out.write_all(batch);
            batch.clear();
        }
    };
    loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let start = batch.len();
                match serde_json::to_writer(&mut batch, &line) {
                    Ok(()) => batch.push(b'\n'),
                    Err(_) => batch.truncate(start),
                }
                if batch.len() >= BATCH_BYTES {
                    write(&mut batch);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => write(&mut batch),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                write(&mut batch);
                return;
            }
        }
    }
}
