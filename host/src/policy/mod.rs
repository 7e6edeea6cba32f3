//! The policy engine: loads routing policies (WebAssembly components implementing the
//! `signalbox:policy` contract) and runs their decisions safely.
//!
//! The flow is: [`PolicyEngine::load`] checks and compiles a component into a
//! [`CompiledPolicy`] (a version); [`CompiledPolicy::bind`] activates it for a tenant
//! with a config and targets, giving a [`PolicyBinding`]; [`PolicyBinding::route`]
//! asks it for a [`RouteDecision`] per request, under a deadline and a memory cap.
//!
//! The types here (request, targets, signals, decision, outcome) are the host's own;
//! the bindings generated from each supported contract version stay inside
//! `contract/`, which converts to and from them.

mod binding;
mod cache;
mod calls;
pub(crate) mod contract;
mod decision;
mod engine;
mod error;
mod guest_log;
mod outcome;
mod request;
mod review;
mod sample;
mod state;
mod store_data;
mod target;
mod wasi;

pub use binding::PolicyBinding;
pub use calls::{CallCounters, FAILURE_KINDS};
pub use contract::Version as ContractVersion;
pub use decision::RouteDecision;
pub use engine::{CompileSource, CompiledPolicy, EngineConfig, PolicyEngine, sha256_hex};
pub use error::{EngineError, LoadError, PolicyError};
pub use guest_log::LogLimiter;
pub use outcome::{Ending, Feedback, Outcome};
pub use request::{ChatMessage, Endpoint, MessagesView, RequestFields, Role, RouteRequest};
pub use review::{AnswerBody, AnswerBodyView, AnswerView, FinishReason, ToolCall, Verdict};
pub use sample::{sample_answer, sample_request, sample_signals, sample_targets};
pub use state::{AddError, SnapshotError, StateChange, StateError, StateLimits, StateStore};
pub use store_data::TenantContext;
pub use target::{TargetInfo, TargetSignals};
