//! The policy engine: loads routing policies (WebAssembly components implementing the
//! `signalbox:policy` contract) and runs their decisions safely.
//!
//! The flow is: [`PolicyEngine::load`] checks and compiles a component into a
//! [`CompiledPolicy`] (a version); [`CompiledPolicy::bind`] activates it for a tenant
//! with a config and targets, giving a [`PolicyBinding`]; [`PolicyBinding::route`]
//! asks it for a [`RouteDecision`] per request, under a deadline and a memory cap.

mod binding;
mod bindings;
mod cache;
mod contract;
mod engine;
mod error;
mod guest_log;
mod request;
mod sample;
mod state;
mod store_data;
mod wasi;

pub use binding::{BindingStats, PolicyBinding};
pub use contract::{CONTRACT_VERSION, ROUTER_EXPORT, VERSION_SECTION};
pub use engine::{CompileSource, CompiledPolicy, EngineConfig, PolicyEngine, sha256_hex};
pub use error::{EngineError, LoadError, PolicyError};
pub use guest_log::LogLimiter;
pub use request::{
    ChatMessage, Endpoint, Feedback, MessagesView, Outcome, RequestFields, Role, RouteDecision,
    RouteRequest, TargetInfo, TargetSignals,
};
pub use sample::{sample_request, sample_signals, sample_targets};
pub use state::{SnapshotError, StateError, StateLimits, StateStore};
pub use store_data::TenantContext;
