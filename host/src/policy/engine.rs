//! The policy engine: one wasmtime `Engine` for the process, compiling and caching
//! policy components and keeping the clock that enforces call deadlines.

use super::cache::ArtifactCache;
use super::contract;
use super::error::{EngineError, LoadError};
use super::store_data::StoreData;
use super::wasi;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

/// How the engine runs policies.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Longest a `route` (or outcome) call may run before it is stopped.
    pub deadline: Duration,
    /// Longest an activation (config parsing, table building) may run.
    pub activation_deadline: Duration,
    /// Most linear memory one instance may use, in bytes.
    pub memory_limit: usize,
    /// Where compiled policies are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Most policy instances alive at once across all tenants (sizes the pooling
    /// allocator; instantiation fails cleanly past it).
    pub max_instances: u32,
    /// Ready instances kept per binding between calls.
    pub idle_instances_per_binding: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            deadline: Duration::from_millis(2),
            activation_deadline: Duration::from_millis(100),
            memory_limit: 32 << 20,
            cache_dir: None,
            max_instances: 256,
            idle_instances_per_binding: 4,
        }
    }
}

/// The policy engine. Cheap to clone; all clones share one wasmtime engine.
#[derive(Clone)]
pub struct PolicyEngine {
    pub(crate) shared: Arc<EngineShared>,
}

pub(crate) struct EngineShared {
    pub engine: Engine,
    pub linker: Linker<StoreData>,
    pub config: EngineConfig,
    cache: Option<ArtifactCache>,
    /// Stops policy calls that run past their deadline.
    clock: Arc<DeadlineClock>,
}

impl Drop for EngineShared {
    fn drop(&mut self) {
        self.clock.stop();
    }
}

impl EngineShared {
    /// Gives the store's next call `budget`: the call is stopped between `budget` and
    /// `budget + tick`. Keep the returned guard alive for the duration of the call.
    pub fn arm(&self, store: &mut Store<StoreData>, budget: Duration) -> Running<'_> {
        let running = self.clock.enter();
        // Rounded up, plus one, because the current tick may be about to end.
        let tick = self.clock.tick.as_nanos().max(1);
        let ticks = u64::try_from(budget.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX / 2) + 1;
        store.set_epoch_deadline(ticks);
        running
    }
}

/// How a policy's compiled code was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    /// Compiled now, taking this long.
    Compiled(Duration),
    /// Loaded from the on-disk cache, taking this long.
    Cached(Duration),
}

impl PolicyEngine {
    /// Starts an engine (and its deadline clock thread).
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        let mut pool = PoolingAllocationConfig::default();
        let max = config.max_instances.max(1);
        // A Rust policy component holds a few core instances (the policy and the
        // component model's small shim modules), one memory and a few tables.
        pool.total_component_instances(max)
            .total_core_instances(max.saturating_mul(4))
            .total_memories(max.saturating_mul(2))
            .total_tables(max.saturating_mul(4))
            .max_memory_size(config.memory_limit);

        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .wasm_backtrace_max_frames(None)
            .parallel_compilation(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| EngineError::Config(e.to_string()))?;

        let mut linker = Linker::new(&engine);
        contract::add_to_linker(&mut linker).map_err(|e| EngineError::Config(e.to_string()))?;

        let cache =
            match &config.cache_dir {
                Some(dir) => Some(ArtifactCache::new(dir, &engine).map_err(|source| {
                    EngineError::CacheDir {
                        path: dir.clone(),
                        source,
                    }
                })?),
                None => None,
            };

        // Half the deadline bounds the overshoot at 50 %; every tick under load is a
        // thread wake-up, so finer ticks cost CPU on a busy gateway. The floor keeps
        // the clock thread from spinning.
        let tick =
            (config.deadline / 2).clamp(Duration::from_micros(100), Duration::from_millis(5));
        let clock = DeadlineClock::start(engine.clone(), tick)
            .map_err(|e| EngineError::Config(format!("cannot start the deadline clock: {e}")))?;

        Ok(PolicyEngine {
            shared: Arc::new(EngineShared {
                engine,
                linker,
                config,
                cache,
                clock,
            }),
        })
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Reads and loads a policy component from `path`.
    pub fn load_file(&self, path: &Path) -> Result<CompiledPolicy, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load(&bytes)
    }

    /// Checks, compiles (or loads from the cache) and pre-links a policy component.
    ///
    /// Each kind of wrong input gets its own [`LoadError`]: not WebAssembly, a core
    /// module, another contract version, another world, invalid code.
    pub fn load(&self, bytes: &[u8]) -> Result<CompiledPolicy, LoadError> {
        let shared = &self.shared;
        let stamped = contract::inspect(bytes)?;
        let sha256 = sha256_hex(bytes);

        let started = Instant::now();
        let cached = shared
            .cache
            .as_ref()
            .and_then(|c| c.load(&shared.engine, &sha256));
        let (component, source) = match cached {
            Some(component) => (component, CompileSource::Cached(started.elapsed())),
            None => {
                let component =
                    Component::new(&shared.engine, bytes).map_err(LoadError::invalid)?;
                let elapsed = started.elapsed();
                if let Some(cache) = &shared.cache {
                    cache.store(&sha256, &component);
                }
                (component, CompileSource::Compiled(elapsed))
            }
        };

        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&shared.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let version = contract::check_exports(exports.iter().map(String::as_str))?;
        let imports: Vec<String> = ty
            .imports(&shared.engine)
            .map(|(name, _)| name.to_owned())
            .collect();

        let mut linker = shared.linker.clone();
        wasi::define(&mut linker, &shared.engine, &component).map_err(LoadError::link)?;
        let pre = contract::Pre::new(&linker, &component, version).map_err(LoadError::link)?;

        tracing::debug!(version = %&sha256[..12], ?source, "policy loaded");
        Ok(CompiledPolicy {
            inner: Arc::new(CompiledInner {
                engine: self.clone(),
                sha256: sha256.into(),
                contract_version: version,
                hooks: stamped.hooks,
                size: bytes.len(),
                source,
                exports,
                imports,
                pre,
            }),
        })
    }
}

/// A loaded policy version: compiled, checked against the contract, pre-linked.
/// Cheap to clone. Bind it to a tenant with [`CompiledPolicy::bind`].
#[derive(Clone)]
pub struct CompiledPolicy {
    pub(crate) inner: Arc<CompiledInner>,
}

pub(crate) struct CompiledInner {
    pub engine: PolicyEngine,
    pub sha256: Arc<str>,
    pub contract_version: contract::Version,
    pub hooks: signalbox_contract::Hooks,
    pub size: usize,
    pub source: CompileSource,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    pub pre: contract::Pre,
}

impl CompiledPolicy {
    /// The version id: the sha256 of the component, in hex.
    pub fn version(&self) -> &str {
        &self.inner.sha256
    }

    /// The contract version the component was built for.
    pub fn contract_version(&self) -> &'static str {
        self.inner.contract_version.as_str()
    }

    /// Whether the policy wants `on-outcome` after every request (its SDK's
    /// `OBSERVES_OUTCOMES`; true for components that do not say).
    pub fn observes_outcomes(&self) -> bool {
        self.inner.hooks.outcomes
    }

    /// Whether the policy reviews answers before the client sees them: it was built
    /// for contract 0.4.0 or later and its SDK's `REVIEWS_ANSWERS` is set (or it does
    /// not say).
    pub fn reviews_answers(&self) -> bool {
        self.inner.hooks.reviews && self.inner.contract_version >= contract::Version::V0_4
    }

    /// Size of the component in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Whether it was compiled now or loaded from the cache, and how long that took.
    pub fn compile_source(&self) -> CompileSource {
        self.inner.source
    }

    /// What the component exports.
    pub fn exports(&self) -> &[String] {
        &self.inner.exports
    }

    /// What the component imports (all satisfied by the host or made to trap).
    pub fn imports(&self) -> &[String] {
        &self.inner.imports
    }
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("version", &self.version())
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

/// A component's version id: its SHA-256 in lower-case hex.
pub fn sha256_hex(component: &[u8]) -> String {
    hex::encode(Sha256::digest(component))
}

/// The clock behind policy deadlines: it advances the engine's epoch every `tick`
/// while policy calls run, which is what stops a call that runs past its deadline.
///
/// An idle gateway should not wake a thread thousands of times a second, so the clock
/// parks after a whole tick without a call and the next call wakes it. Under load it
/// keeps ticking and calls never pay for a wake-up. Ticks that pass while no call
/// runs are skipped, which only ever gives a call more time, never less: every tick
/// of a call's budget passes while it runs.
pub(crate) struct DeadlineClock {
    engine: Engine,
    tick: Duration,
    /// Calls running now.
    running: AtomicUsize,
    /// Calls started since the engine started.
    started: AtomicU64,
    /// Whether the clock thread is (about to be) parked.
    parked: AtomicBool,
    stopped: AtomicBool,
    thread: std::sync::OnceLock<std::thread::Thread>,
}

/// A policy call in progress (see [`EngineShared::arm`]).
pub(crate) struct Running<'a>(&'a DeadlineClock);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl DeadlineClock {
    /// Starts the clock thread. Without it a runaway policy is never stopped, so
    /// failing to start it fails the engine.
    fn start(engine: Engine, tick: Duration) -> std::io::Result<Arc<DeadlineClock>> {
        let clock = Arc::new(DeadlineClock {
            engine,
            tick,
            running: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            thread: std::sync::OnceLock::new(),
        });
        // The thread holds only a weak reference, so dropping the engine ends it.
        let weak = Arc::downgrade(&clock);
        let handle = std::thread::Builder::new()
            .name("signalbox-policy-clock".into())
            .spawn(move || {
                let mut seen = 0;
                while let Some(clock) = weak.upgrade() {
                    if !clock.run_once(&mut seen) {
                        break;
                    }
                }
            })?;
        let _ = clock.thread.set(handle.thread().clone());
        Ok(clock)
    }

    /// One tick (or one park). `false` once the clock is stopped.
    fn run_once(&self, seen: &mut u64) -> bool {
        if self.stopped.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(self.tick);
        if self.running.load(Ordering::SeqCst) > 0 {
            self.engine.increment_epoch();
        }
        let started = self.started.load(Ordering::SeqCst);
        if started == *seen && self.running.load(Ordering::SeqCst) == 0 {
            // Announce the park before the last look, so a call starting in between
            // either is seen here or finds `parked` set and unparks the thread.
            self.parked.store(true, Ordering::SeqCst);
            if self.started.load(Ordering::SeqCst) == started
                && !self.stopped.load(Ordering::SeqCst)
            {
                std::thread::park();
            }
            self.parked.store(false, Ordering::SeqCst);
        }
        *seen = self.started.load(Ordering::SeqCst);
        true
    }

    fn enter(&self) -> Running<'_> {
        self.running.fetch_add(1, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) {
            self.wake();
        }
        Running(self)
    }

    fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake();
    }
}
