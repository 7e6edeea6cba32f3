//! A policy version bound to a tenant's config and targets, with its ready instances.

use super::calls::CallCounters;
use super::contract::Exports;
use super::engine::{CompiledPolicy, EngineShared};
use super::error::PolicyError;
use super::request::{MessagesView, RouteRequest};
use super::review::{AnswerBodyView, AnswerView, Verdict};
use super::store_data::{StoreData, TenantContext};
use super::target::{TargetInfo, TargetSignals};
use super::{Feedback, Outcome, RouteDecision};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::{Store, Trap};

/// One live instance: its store and the typed handles of its exports.
struct PolicyInstance {
    store: Store<StoreData>,
    exports: Exports,
}

/// A policy version activated for one tenant with one config and target list.
///
/// Every call takes a ready instance from a small pool (or creates and activates a new
/// one), calls it under the deadline, and returns it to the pool only if the call
/// ended normally: an instance that trapped, ran out of time or memory is dropped, so
/// whatever state it was in can never affect a later call.
pub struct PolicyBinding {
    policy: CompiledPolicy,
    tenant: TenantContext,
    config: String,
    targets: Vec<TargetInfo>,
    idle: Mutex<Vec<PolicyInstance>>,
    /// Where its route calls are counted: its own until [`PolicyBinding::count_in`]
    /// shares its version's.
    calls: Arc<CallCounters>,
    /// Instances created (the first, and replacements for discarded ones).
    instances_created: AtomicU64,
}

impl CompiledPolicy {
    /// Activates this policy for `tenant` with `config` (JSON text) and `targets`.
    ///
    /// Creates the first instance and calls the policy's `activate`, so a rejected
    /// config is reported here, as [`PolicyError::BadConfig`], before any request
    /// depends on it.
    pub fn bind(
        &self,
        tenant: TenantContext,
        config: &str,
        targets: Vec<TargetInfo>,
    ) -> Result<PolicyBinding, PolicyError> {
        let binding = PolicyBinding {
            policy: self.clone(),
            tenant,
            config: if config.trim().is_empty() {
                "{}".to_owned()
            } else {
                config.to_owned()
            },
            targets,
            idle: Mutex::new(Vec::new()),
            calls: Arc::default(),
            instances_created: AtomicU64::new(0),
        };
        let first = binding.new_instance()?;
        binding.check_in(first);
        Ok(binding)
    }
}

impl PolicyBinding {
    fn engine(&self) -> &EngineShared {
        &self.policy.inner.engine.shared
    }

    /// The policy version.
    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }

    /// The targets the policy was activated with, in index order.
    pub fn targets(&self) -> &[TargetInfo] {
        &self.targets
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantContext {
        &self.tenant
    }

    /// The JSON config.
    pub fn config(&self) -> &str {
        &self.config
    }

    /// Counts this binding's route calls in `calls` from now on (a version's bindings
    /// share one set; calls made before, such as deployment checks, are not moved).
    pub fn count_in(mut self, calls: Arc<CallCounters>) -> Self {
        self.calls = calls;
        self
    }

    /// How its route calls went.
    pub fn calls(&self) -> &CallCounters {
        &self.calls
    }

    /// Instances created so far (the first, and replacements for discarded ones).
    pub fn instances_created(&self) -> u64 {
        self.instances_created.load(Ordering::Relaxed)
    }

    /// Ready instances in the pool now.
    pub fn idle_instances(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Asks the policy where to send `request`, given one signal per target.
    ///
    /// Never panics and never hangs past the deadline: a trap, timeout, memory cap
    /// or invalid answer comes back as a [`PolicyError`].
    pub fn route(
        &self,
        request: &RouteRequest,
        signals: &[TargetSignals],
    ) -> Result<RouteDecision, PolicyError> {
        let result = self.route_once(request, signals);
        self.calls.record(&result);
        result
    }

    fn route_once(
        &self,
        request: &RouteRequest,
        signals: &[TargetSignals],
    ) -> Result<RouteDecision, PolicyError> {
        if signals.len() != self.targets.len() {
            return Err(PolicyError::InvalidDecision(format!(
                "host sent {} signals for {} targets",
                signals.len(),
                self.targets.len()
            )));
        }
        let mut instance = self.check_out()?;
        let deadline = self.engine().config.deadline;
        let _running = self.engine().arm(&mut instance.store, deadline);

        let messages = instance
            .store
            .data_mut()
            .table
            .push(MessagesView(request.messages.clone()))
            .map_err(|e| PolicyError::Instantiate(e.to_string()))?;
        let borrowed = wasmtime::component::Resource::<MessagesView>::new_borrow(messages.rep());
        let answer = instance.exports.route(
            &mut instance.store,
            request,
            borrowed,
            signals,
            self.targets.len(),
        );
        match answer {
            Ok(checked) => {
                // The handle must not outlive the call; a failure here means the
                // instance's table is inconsistent, so it is not reused.
                if instance.store.data_mut().table.delete(messages).is_ok() {
                    self.check_in(instance);
                }
                checked
            }
            Err(error) => Err(classify(error, instance, deadline)),
        }
    }

    /// Asks the policy what to make of `answer` (contract 0.4.0 on; earlier versions
    /// accept). Like [`route`](Self::route): never panics, never hangs past the
    /// deadline; a trap, timeout, memory cap or invalid verdict comes back as a
    /// [`PolicyError`], and the call is counted with the route calls.
    pub fn review(&self, answer: &AnswerView) -> Result<Verdict, PolicyError> {
        let result = self.review_once(answer);
        self.calls.record(&result);
        result
    }

    fn review_once(&self, answer: &AnswerView) -> Result<Verdict, PolicyError> {
        let mut instance = self.check_out()?;
        let deadline = self.engine().config.deadline;
        let _running = self.engine().arm(&mut instance.store, deadline);
        let body = instance
            .store
            .data_mut()
            .table
            .push(AnswerBodyView(answer.body.clone()))
            .map_err(|e| PolicyError::Instantiate(e.to_string()))?;
        let borrowed = wasmtime::component::Resource::<AnswerBodyView>::new_borrow(body.rep());
        let verdict =
            instance
                .exports
                .review(&mut instance.store, answer, borrowed, self.targets.len());
        match verdict {
            Ok(checked) => {
                if instance.store.data_mut().table.delete(body).is_ok() {
                    self.check_in(instance);
                }
                checked
            }
            Err(error) => Err(classify(error, instance, deadline)),
        }
    }

    /// Reports an outcome to the policy (off the request path).
    pub fn on_outcome(&self, outcome: &Outcome) -> Result<(), PolicyError> {
        let mut instance = self.check_out()?;
        let deadline = self.engine().config.deadline;
        let _running = self.engine().arm(&mut instance.store, deadline);
        let result = instance.exports.on_outcome(&mut instance.store, outcome);
        self.finish_notification(instance, result, deadline)
    }

    /// Reports a feedback score to the policy (off the request path).
    pub fn on_feedback(&self, feedback: &Feedback) -> Result<(), PolicyError> {
        let mut instance = self.check_out()?;
        let deadline = self.engine().config.deadline;
        let _running = self.engine().arm(&mut instance.store, deadline);
        let result = instance.exports.on_feedback(&mut instance.store, feedback);
        self.finish_notification(instance, result, deadline)
    }

    fn finish_notification(
        &self,
        instance: PolicyInstance,
        result: wasmtime::Result<()>,
        deadline: Duration,
    ) -> Result<(), PolicyError> {
        match result {
            Ok(()) => {
                self.check_in(instance);
                Ok(())
            }
            Err(error) => Err(classify(error, instance, deadline)),
        }
    }

    fn check_out(&self) -> Result<PolicyInstance, PolicyError> {
        let ready = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match ready {
            Some(instance) => Ok(instance),
            None => self.new_instance(),
        }
    }

    fn check_in(&self, instance: PolicyInstance) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.engine().config.idle_instances_per_binding
        {
            idle.push(instance);
        }
    }

    /// Instantiates and activates a fresh instance.
    fn new_instance(&self) -> Result<PolicyInstance, PolicyError> {
        let engine = self.engine();
        let data = StoreData::new(
            self.tenant.clone(),
            self.policy.inner.sha256.clone(),
            engine.config.memory_limit,
        );
        let mut store = Store::new(&engine.engine, data);
        store.limiter(|data| &mut data.memory);
        // With epoch interruption on, a store without a deadline traps at once.
        let activation = engine.config.activation_deadline;
        let _running = engine.arm(&mut store, activation);
        let exports = self
            .policy
            .inner
            .pre
            .instantiate(&mut store)
            .map_err(|e| PolicyError::Instantiate(format!("{e:#}")))?;
        self.instances_created.fetch_add(1, Ordering::Relaxed);
        let mut instance = PolicyInstance { store, exports };
        let activated = instance
            .exports
            .activate(&mut instance.store, &self.config, &self.targets);
        match activated {
            Ok(Ok(())) => Ok(instance),
            Ok(Err(message)) => Err(PolicyError::BadConfig(message)),
            Err(error) => Err(classify(error, instance, activation)),
        }
    }
}

/// Turns a failed call into a typed error; the instance is consumed (discarded).
fn classify(
    error: wasmtime::Error,
    mut instance: PolicyInstance,
    deadline: Duration,
) -> PolicyError {
    let data = instance.store.data_mut();
    data.flush_output();
    if data.memory.hit {
        return PolicyError::MemoryLimit(data.memory.cap);
    }
    if let Some(Trap::Interrupt) = error.downcast_ref::<Trap>() {
        return PolicyError::Deadline(deadline);
    }
    let mut message = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    if let Some(stderr) = data.take_recent_stderr() {
        message = format!("{message} ({stderr})");
    }
    PolicyError::Trap(message)
}

impl std::fmt::Debug for PolicyBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyBinding")
            .field("tenant", &self.tenant.tenant)
            .field("version", &self.policy.version())
            .field("targets", &self.targets.len())
            .finish_non_exhaustive()
    }
}
