//! The decision log: an optional JSONL file with one line per routed request — the
//! features the policy saw (sizes and tags; message text only for tenants that opt
//! in), a summary of the target snapshot, the decision and the outcome — for offline
//! replay and debugging.
//!
//! Lines are written by a background thread; the request path only hands over a
//! value. When the writer falls behind, the queue is bounded and a line that does not
//! fit is dropped and counted (this is a debugging aid, unlike the usage ledger).
//!
//! The file is rotated by size ([`Rotation`]): `path` → `path.1` → `path.2` …, the
//! oldest beyond `max_files` deleted. Two gateways append to the same file while one
//! hands its listeners to the other, so rotation is done under an advisory lock on
//! `<path>.lock` that every writer takes around each write, and a writer whose open
//! file is no longer `path` (the other one rotated it) reopens `path` first. Each
//! line is written once, whole, into the file that is `path` at that moment.

use crate::policy::{Ending, Role, RouteRequest, TargetSignals};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
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
    /// Of the input, read from the provider's prompt cache.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_read_tokens: u32,
    /// Of the input, written to the provider's prompt cache.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u32,
    /// Of the output, spent on reasoning.
    #[serde(skip_serializing_if = "is_zero")]
    pub reasoning_tokens: u32,
    /// The counts are the gateway's estimate, not the upstream's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub usage_estimated: bool,
    /// Cost in US dollars of the answer the client received.
    pub cost_usd: f64,
    /// Extra attempts the request paid for: answers the policy's review refused and
    /// the verifiers it asked. The request's whole cost is `cost_usd` plus theirs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub charged: Vec<ChargedEntry>,
    /// What reviews decided that the rest does not show (an escalation not honoured,
    /// a review that failed and so accepted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reviews: Vec<String>,
    /// The protocol the client spoke, when not chat (`messages`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<&'static str>,
    /// What the answering target's protocol could not carry of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An extra attempt a request paid for.
#[derive(Debug, Clone, Serialize)]
pub struct ChargedEntry {
    /// The target's id.
    pub target: String,
    /// `escalated` or `verifier`.
    pub charge: &'static str,
    /// Why (the policy's reason for an escalation).
    pub reason: String,
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

/// When the log's file is rotated (`[decision_log] max_bytes` and `max_files`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The size a file may reach; a line that would take it further goes to a new
    /// file (a line longer than this alone still gets a file of its own). 0: never.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub max_files: u32,
}

impl Rotation {
    /// Whether a file of `size` bytes must be rotated before `line` more bytes are
    /// appended: never an empty file, so every line lands somewhere.
    pub fn is_due(&self, size: u64, line: u64) -> bool {
        self.max_bytes > 0 && size > 0 && size.saturating_add(line) > self.max_bytes
    }

    /// The renames of one rotation, in the order they must run so that none
    /// overwrites a file still to be moved: `(from, to)` generations, 0 being the
    /// live file itself. The rename onto `max_files` replaces (deletes) the oldest;
    /// with `max_files` 0 there is nothing to keep and the live file is removed.
    pub fn renames(&self) -> Vec<(u32, u32)> {
        (0..self.max_files).rev().map(|n| (n, n + 1)).collect()
    }
}

/// `path` of generation `n`: the live file for 0, else `<path>.<n>`.
pub fn generation(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_owned();
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// A running decision log.
pub struct DecisionLog {
    queue: SyncSender<DecisionRecord>,
    dropped: AtomicU64,
}

impl DecisionLog {
    /// Appends to `path` (created if missing), rotating it as `rotation` says.
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let file = LogFile::open(path, rotation)?;
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
fn write_lines(mut out: LogFile, lines: &Receiver<DecisionRecord>) {
    const BATCH_BYTES: usize = 64 << 10;
    let mut batch = Batch::default();
    let mut write = |batch: &mut Batch| {
        if !batch.bytes.is_empty() {
            if let Err(e) = out.append(batch) {
                tracing::warn!(path = %out.live.path.display(), error = %e, "decision log: lines not written");
            }
            batch.clear();
        }
    };
    loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let start = batch.bytes.len();
                match serde_json::to_writer(&mut batch.bytes, &line) {
                    Ok(()) => {
                        batch.bytes.push(b'\n');
                        batch.ends.push(batch.bytes.len());
                    }
                    Err(_) => batch.bytes.truncate(start),
                }
                if batch.bytes.len() >= BATCH_BYTES {
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

/// Whole lines waiting to be written: their bytes, and where each line ends.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

/// The log's live file as this writer has it open, and the rotation lock.
struct LogFile {
    live: LiveFile,
    /// Held around every write when rotating, by every gateway writing `path`.
    lock: Option<std::fs::File>,
}

/// The log's live file as this writer has it open, and how it is rotated.
struct LiveFile {
    path: PathBuf,
    rotation: Rotation,
    file: std::fs::File,
}

impl LogFile {
    fn open(path: &Path, rotation: Rotation) -> std::io::Result<Self> {
        let lock = if rotation.max_bytes > 0 {
            let mut name = path.as_os_str().to_owned();
            name.push(".lock");
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(PathBuf::from(name))?,
            )
        } else {
            None
        };
        Ok(LogFile {
            live: LiveFile {
                path: path.to_owned(),
                rotation,
                file: append_to(path)?,
            },
            lock,
        })
    }

    /// Appends the batch's lines, starting a new file wherever the next line would
    /// take the current one past `max_bytes`.
    fn append(&mut self, batch: &Batch) -> std::io::Result<()> {
        let _locked = match &self.lock {
            Some(lock) => Some(Locked::take(lock)?),
            None => None,
        };
        self.live.append(batch)
    }
}

impl LiveFile {
    fn append(&mut self, batch: &Batch) -> std::io::Result<()> {
        self.follow()?;
        if self.rotation.max_bytes == 0 {
            return self.file.write_all(&batch.bytes);
        }
        let mut size = self.file.metadata()?.len();
        let mut start = 0;
        while start < batch.bytes.len() {
            // The lines from `start` that fit in the current file (at least one
            // when it is empty).
            let mut end = start;
            for &line_end in batch.ends.iter().filter(|&&e| e > start) {
                let line = (line_end - end) as u64;
                let taken = (end - start) as u64;
                if self.rotation.is_due(size + taken, line) {
                    break;
                }
                end = line_end;
            }
            if end == start {
                self.rotate()?;
                size = 0;
                continue;
            }
            self.file.write_all(&batch.bytes[start..end])?;
            size += (end - start) as u64;
            start = end;
        }
        Ok(())
    }

    /// Reopens `path` when the open file is no longer it: another gateway rotated
    /// it (or someone moved it away).
    fn follow(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let open = self.file.metadata()?;
        let same = match std::fs::metadata(&self.path) {
            Ok(live) => live.dev() == open.dev() && live.ino() == open.ino(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if !same {
            self.file = append_to(&self.path)?;
        }
        Ok(())
    }

    /// Shifts every generation up by one (dropping the oldest) and starts `path`
    /// afresh.
    fn rotate(&mut self) -> std::io::Result<()> {
        if self.rotation.max_files == 0 {
            remove_if_present(&self.path)?;
        }
        for (from, to) in self.rotation.renames() {
            match std::fs::rename(generation(&self.path, from), generation(&self.path, to)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        // Generations past `max_files`, left by a config that kept more.
        let mut n = self.rotation.max_files + 1;
        while generation(&self.path, n).exists() {
            remove_if_present(&generation(&self.path, n))?;
            n += 1;
        }
        self.file = append_to(&self.path)?;
        Ok(())
    }
}

fn append_to(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// An exclusive advisory lock on the rotation lock file, released when dropped.
struct Locked<'f>(&'f std::fs::File);

impl<'f> Locked<'f> {
    fn take(file: &'f std::fs::File) -> std::io::Result<Self> {
        file.lock()?;
        Ok(Locked(file))
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_is_due_when_a_line_would_pass_the_bound_of_a_non_empty_file() {
        let r = Rotation {
            max_bytes: 100,
            max_files: 3,
        };
        assert!(!r.is_due(0, 500), "an empty file takes any line");
        assert!(!r.is_due(60, 40), "exactly the bound fits");
        assert!(r.is_due(60, 41));
        assert!(r.is_due(u64::MAX, 1), "no overflow");
        let never = Rotation {
            max_bytes: 0,
            max_files: 3,
        };
        assert!(!never.is_due(u64::MAX, u64::MAX));
    }

    #[test]
    fn a_rotation_shifts_the_oldest_first_and_keeps_max_files() {
        let r = |max_files| Rotation {
            max_bytes: 1,
            max_files,
        };
        assert_eq!(r(3).renames(), [(2, 3), (1, 2), (0, 1)]);
        assert_eq!(r(1).renames(), [(0, 1)]);
        assert!(r(0).renames().is_empty());
        let path = Path::new("logs/d.jsonl");
        assert_eq!(generation(path, 0), path);
        assert_eq!(generation(path, 2), Path::new("logs/d.jsonl.2"));
    }

    fn batch(lines: &[String]) -> Batch {
        let mut b = Batch::default();
        for line in lines {
            b.bytes.extend_from_slice(line.as_bytes());
            b.bytes.push(b'\n');
            b.ends.push(b.bytes.len());
        }
        b
    }

    #[test]
    fn two_writers_rotating_one_file_keep_every_line_once_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let rotation = Rotation {
            max_bytes: 200,
            max_files: 50,
        };
        // Two writers on one path, as two gateways during a hand-over, taking turns.
        let mut a = LogFile::open(&path, rotation).unwrap();
        let mut b = LogFile::open(&path, rotation).unwrap();
        let mut expected = Vec::new();
        for round in 0..30 {
            let lines: Vec<String> = (0..3)
                .map(|i| format!("line-{round}-{i}-{}", "x".repeat(round % 7 * 9)))
                .collect();
            let writer = if round % 2 == 0 { &mut a } else { &mut b };
            writer.append(&batch(&lines)).unwrap();
            expected.extend(lines);
        }
        let mut found = Vec::new();
        for n in (0..=rotation.max_files).rev() {
            let Ok(text) = std::fs::read_to_string(generation(&path, n)) else {
                continue;
            };
            assert!(
                text.len() as u64 <= rotation.max_bytes,
                "generation {n}: {} bytes",
                text.len()
            );
            assert!(text.ends_with('\n'));
            found.extend(text.lines().map(str::to_owned));
        }
        assert_eq!(found, expected, "every line once, in order");
        assert!(generation(&path, 3).exists(), "it rotated");
    }

    #[test]
    fn only_max_files_generations_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let rotation = Rotation {
            max_bytes: 10,
            max_files: 2,
        };
        let mut log = LogFile::open(&path, rotation).unwrap();
        for i in 0..6 {
            log.append(&batch(&[format!("line-{i}")])).unwrap();
        }
        let read = |n| std::fs::read_to_string(generation(&path, n)).unwrap();
        assert_eq!(read(0), "line-5\n");
        assert_eq!(read(1), "line-4\n");
        assert_eq!(read(2), "line-3\n");
        assert!(!generation(&path, 3).exists());
    }
}
