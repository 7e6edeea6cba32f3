//! The decision log: an optional JSONL file with one line per routed request — the
//! features the policy saw (sizes and tags; message text only for tenants that opt
//! in), a summary of the target snapshot, the decision and the outcome — for offline
//! replay and debugging.
//!
//! Lines are written by a background thread; the request path only hands over a
//! value. When the writer falls behind, the queue is bounded and a line that does not
//! fit is dropped and counted (this is a debugging aid, unlike the usage ledger).

use crate::policy::{RouteRequest, TargetSignals};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

/// Lines waiting for the writer.
const QUEUE: usize = 16 * 1024;

/// A running decision log.
pub struct DecisionLog {
    queue: SyncSender<Value>,
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
            .spawn(move || write_lines(std::io::BufWriter::new(file), &lines))?;
        Ok(DecisionLog {
            queue,
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues a finished record.
    pub fn write(&self, record: Value) {
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

fn write_lines(mut out: std::io::BufWriter<std::fs::File>, lines: &Receiver<Value>) {
    loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let _ = serde_json::to_writer(&mut out, &line);
                let _ = out.write_all(b"\n");
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = out.flush();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        }
    }
}

/// The start of a record: what the policy saw. `with_text` adds the messages' text.
pub fn features(
    tenant: &str,
    request: &RouteRequest,
    targets: &[&str],
    signals: &[TargetSignals],
    with_text: bool,
) -> Value {
    let r = &request.record;
    let snapshot: Vec<Value> = targets
        .iter()
        .zip(signals)
        .map(|(id, s)| {
            json!({
                "target": id,
                "healthy": s.healthy,
                "in_flight": s.in_flight,
                "latency_ms": s.latency_ms,
                "ttft_ms": s.ttft_ms,
                "error_rate": s.error_rate,
                "rate_limited_ms": s.rate_limited_ms,
            })
        })
        .collect();
    let mut record = json!({
        "ts_ms": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        "request_id": r.id,
        "tenant": tenant,
        "request": {
            "model": r.model,
            "input_tokens": r.input_tokens,
            "max_output_tokens": r.max_output_tokens,
            "stream": r.stream,
            "has_tools": r.has_tools,
            "message_count": r.message_count,
            "message_chars": request.messages.iter().map(|m| m.text.chars().count()).sum::<usize>(),
            "metadata": r.metadata.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        },
        "snapshot": snapshot,
    });
    if with_text {
        record["request"]["messages"] = request
            .messages
            .iter()
            .map(|m| json!({"role": role_name(m.role), "text": &*m.text}))
            .collect();
    }
    record
}

fn role_name(role: crate::policy::Role) -> &'static str {
    use crate::policy::Role;
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
        Role::Other => "other",
    }
}
