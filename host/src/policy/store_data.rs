//! What each policy instance's store holds, and the host side of the contract's
//! imports (`host` and the `messages` resource).

use super::guest_log::{self, LogLimiter, Source};
use super::request::{MessagesView, Role};
use super::state::StateStore;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Instant;
use wasmtime::component::{Resource, ResourceTable};

/// Who a policy instance works for. Cloned into every instance of a binding.
#[derive(Debug, Clone)]
pub struct TenantContext {
    /// The tenant's id, for logs.
    pub tenant: Arc<str>,
    /// The tenant's state store, shared by all its instances and versions.
    pub state: Arc<StateStore>,
    /// The tenant's log-line budget.
    pub log: Arc<LogLimiter>,
}

impl TenantContext {
    /// A tenant with a fresh state store and log limiter.
    pub fn new(tenant: impl Into<Arc<str>>) -> Self {
        TenantContext::with_state(tenant, StateStore::default())
    }

    /// A tenant whose state store starts as `state` (e.g. restored from disk).
    pub fn with_state(tenant: impl Into<Arc<str>>, state: StateStore) -> Self {
        TenantContext {
            tenant: tenant.into(),
            state: Arc::new(state),
            log: Arc::new(LogLimiter::default()),
        }
    }
}

/// Longest partial line kept from a guest's stdout/stderr before it is flushed.
const MAX_PENDING_OUTPUT: usize = 4096;

/// Stderr lines kept for error messages (a Rust panic prints two).
const RECENT_STDERR_LINES: usize = 2;

/// The data of one instance's `Store`.
pub(crate) struct StoreData {
    pub tenant: TenantContext,
    pub version: Arc<str>,
    pub table: ResourceTable,
    pub memory: MemoryCap,
    rng: u64,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// The last stderr lines, which for a panic hold the panic message: they go into
    /// the trap error so the operator sees why.
    recent_stderr: VecDeque<String>,
}

impl StoreData {
    pub fn new(tenant: TenantContext, version: Arc<str>, memory_cap: usize) -> Self {
        StoreData {
            tenant,
            version,
            table: ResourceTable::new(),
            memory: MemoryCap {
                cap: memory_cap,
                hit: false,
            },
            rng: seed(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            recent_stderr: VecDeque::new(),
        }
    }

    fn emit(&self, source: Source, line: &str) {
        guest_log::emit(
            &self.tenant.log,
            &self.tenant.tenant,
            &self.version,
            source,
            line,
        );
    }

    /// Takes bytes a guest wrote to stdout (`false`) or stderr (`true`) and logs every
    /// complete line.
    pub fn write_output(&mut self, to_stderr: bool, bytes: &[u8]) {
        let mut pending = std::mem::take(if to_stderr {
            &mut self.stderr
        } else {
            &mut self.stdout
        });
        pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
            self.output_line(to_stderr, &pending[start..start + pos]);
            start += pos + 1;
        }
        pending.drain(..start);
        if pending.len() > MAX_PENDING_OUTPUT {
            self.output_line(to_stderr, &pending);
            pending.clear();
        }
        *(if to_stderr {
            &mut self.stderr
        } else {
            &mut self.stdout
        }) = pending;
    }

    /// The last lines the guest wrote to stderr, joined: a panic's location and message.
    pub fn take_recent_stderr(&mut self) -> Option<String> {
        if self.recent_stderr.is_empty() {
            return None;
        }
        let lines: Vec<String> = self.recent_stderr.drain(..).collect();
        Some(lines.join(" "))
    }

    /// Logs whatever partial lines are left (e.g. after a trap).
    pub fn flush_output(&mut self) {
        for to_stderr in [false, true] {
            let pending = std::mem::take(if to_stderr {
                &mut self.stderr
            } else {
                &mut self.stdout
            });
            if !pending.is_empty() {
                self.output_line(to_stderr, &pending);
            }
        }
    }

    fn output_line(&mut self, to_stderr: bool, bytes: &[u8]) {
        let line = String::from_utf8_lossy(bytes);
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            return;
        }
        if to_stderr {
            self.emit(Source::Stderr, line);
            // std's hint about RUST_BACKTRACE says nothing about the failure.
            if !line.starts_with("note: run with `RUST_BACKTRACE") {
                if self.recent_stderr.len() == RECENT_STDERR_LINES {
                    self.recent_stderr.pop_front();
                }
                self.recent_stderr.push_back(line.to_owned());
            }
        } else {
            self.emit(Source::Stdout, line);
        }
    }
}

/// Caps an instance's linear memory and remembers whether the cap was hit, so a
/// resulting trap is reported as a memory-limit error rather than a generic one.
pub(crate) struct MemoryCap {
    pub cap: usize,
    pub hit: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
            // Refusing makes `memory.grow` return -1; Rust guests then abort, which
            // surfaces as a trap that the engine reports as `MemoryLimit`.
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A per-instance seed: process-random keys from std's hasher, mixed with a counter.
fn seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    KEYS.get_or_init(RandomState::new).hash_one(n)
}

/// Nanoseconds since the process's first reading: the policy's monotonic clock.
pub(crate) fn monotonic_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

// The host's side of the contract's imports, shared by every contract version (the
// per-version trait impls in `contract/` call these).
impl StoreData {
    /// A line the guest logged through the contract.
    pub fn guest_log(&self, level: tracing::Level, message: &str) {
        self.emit(Source::Log(level), message);
    }

    /// The next number of the instance's generator (splitmix64 over a per-instance
    /// seed).
    pub fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn message_role(&self, view: &Resource<MessagesView>, index: u32) -> Option<Role> {
        let view = self.table.get(view).ok()?;
        view.0.get(index as usize).map(|m| m.role)
    }

    pub fn message_text_len(&self, view: &Resource<MessagesView>, index: u32) -> Option<u32> {
        let view = self.table.get(view).ok()?;
        let len = view.0.get(index as usize)?.text.len();
        Some(u32::try_from(len).unwrap_or(u32::MAX))
    }

    pub fn message_text(&self, view: &Resource<MessagesView>, index: u32) -> Option<String> {
        let view = self.table.get(view).ok()?;
        view.0.get(index as usize).map(|m| m.text.to_string())
    }

    pub fn last_user_text(&self, view: &Resource<MessagesView>) -> Option<String> {
        let view = self.table.get(view).ok()?;
        view.0
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.text.to_string())
    }
}
