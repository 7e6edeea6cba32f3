//! The part of every contract version's bindings that is the same from one version
//! to the next: the generated code, the host's imports, and the conversion of the
//! records that have not changed. Each version module invokes [`contract_bindings!`]
//! with its frozen WIT and adds what differs.

/// Generates the bindings of one contract version and the host side of its imports;
/// `with { … }` maps the resources a version adds to the host's types, and the braces
/// after it hold the host functions a version adds to the others'.
macro_rules! contract_bindings {
    ($wit:literal $(, with { $($with:tt)* })? $(, { $($added:tt)* })?) => {
        wasmtime::component::bindgen!({
            path: $wit,
            world: "policy",
            with: {
                "signalbox:policy/types.messages": crate::policy::request::MessagesView,
                $($($with)*)?
            },
        });

        use self::signalbox::policy::{host, types};
        use crate::policy::request::{MessagesView, Role, RouteRequest};
        use crate::policy::store_data::StoreData;
        use crate::policy::target::{TargetInfo, TargetSignals};
        use wasmtime::component::Resource;

        impl host::Host for StoreData {
            fn log(&mut self, level: types::LogLevel, message: String) {
                let level = match level {
                    types::LogLevel::Trace => tracing::Level::TRACE,
                    types::LogLevel::Debug => tracing::Level::DEBUG,
                    types::LogLevel::Info => tracing::Level::INFO,
                    types::LogLevel::Warn => tracing::Level::WARN,
                    types::LogLevel::Error => tracing::Level::ERROR,
                };
                self.guest_log(level, &message);
            }

            fn now_ns(&mut self) -> u64 {
                crate::policy::store_data::monotonic_ns()
            }

            fn random_u64(&mut self) -> u64 {
                self.next_random()
            }

            fn state_get(&mut self, key: String) -> Option<Vec<u8>> {
                self.tenant.state.get(&key)
            }

            fn state_set(
                &mut self,
                key: String,
                value: Vec<u8>,
            ) -> Result<(), types::StateError> {
                self.tenant.state.set(&key, value).map_err(state_error)
            }

            fn state_delete(&mut self, key: String) {
                self.tenant.state.delete(&key)
            }

            $($($added)*)?
        }

        /// A refused state-store write, as this version says it.
        fn state_error(e: crate::policy::state::StateError) -> types::StateError {
            use crate::policy::state::StateError;
            let limit = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            match e {
                StateError::KeyTooLarge(n) => types::StateError::KeyTooLarge(limit(n)),
                StateError::ValueTooLarge(n) => types::StateError::ValueTooLarge(limit(n)),
                StateError::QuotaExceeded => types::StateError::QuotaExceeded,
            }
        }

        impl types::Host for StoreData {}

        impl types::HostMessages for StoreData {
            fn role(&mut self, this: Resource<MessagesView>, index: u32) -> Option<types::Role> {
                self.message_role(&this, index).map(role)
            }

            fn text_len(&mut self, this: Resource<MessagesView>, index: u32) -> Option<u32> {
                self.message_text_len(&this, index)
            }

            fn text(&mut self, this: Resource<MessagesView>, index: u32) -> Option<String> {
                self.message_text(&this, index)
            }

            fn last_user_text(&mut self, this: Resource<MessagesView>) -> Option<String> {
                StoreData::last_user_text(self, &this)
            }

            fn drop(&mut self, this: Resource<MessagesView>) -> wasmtime::Result<()> {
                // The host owns the handle and deletes it after the call; a guest drop
                // of a borrow never reaches here, and an own handle is never given out.
                let _ = self.table.delete(this);
                Ok(())
            }
        }

        fn role(role: Role) -> types::Role {
            match role {
                Role::System => types::Role::System,
                Role::User => types::Role::User,
                Role::Assistant => types::Role::Assistant,
                Role::Tool => types::Role::Tool,
                Role::Other => types::Role::Other,
            }
        }

        /// The activation record of each target.
        pub(super) fn targets(targets: &[TargetInfo]) -> Vec<types::Target> {
            targets
                .iter()
                .map(|t| types::Target {
                    id: t.id.clone(),
                    provider: t.provider.clone(),
                    model: t.model.clone(),
                    input_price: t.input_price,
                    output_price: t.output_price,
                    context_window: t.context_window,
                    tags: t.tags.clone(),
                })
                .collect()
        }

        /// Per-instance buffers for the per-call records: a decision converts the
        /// request and the signals into them, reusing their allocations, so the
        /// conversion allocates nothing once an instance has served a call.
        #[derive(Default)]
        pub(crate) struct Scratch {
            request: Option<types::Request>,
            signals: Vec<types::Signals>,
        }

        impl Scratch {
            /// The request record (message text stays behind the `messages` resource)
            /// and one signals record per target.
            pub(super) fn fill(
                &mut self,
                request: &RouteRequest,
                signals: &[TargetSignals],
            ) -> (&types::Request, &[types::Signals]) {
                let f = request.fields();
                let endpoint = match f.endpoint {
                    crate::policy::Endpoint::Chat => types::Endpoint::Chat,
                    crate::policy::Endpoint::Embedding => types::Endpoint::Embedding,
                };
                let record = self.request.get_or_insert_with(|| types::Request {
                    id: String::new(),
                    endpoint,
                    model: String::new(),
                    input_tokens: 0,
                    max_output_tokens: None,
                    stream: false,
                    has_tools: false,
                    message_count: 0,
                    metadata: Vec::new(),
                });
                record.id.clone_from(&f.id);
                record.endpoint = endpoint;
                record.model.clone_from(&f.model);
                record.input_tokens = f.input_tokens;
                record.max_output_tokens = f.max_output_tokens;
                record.stream = f.stream;
                record.has_tools = f.has_tools;
                record.message_count = request.message_count();
                record.metadata.clone_from(&f.metadata);
                self.signals.clear();
                self.signals.extend(signals.iter().map(|s| types::Signals {
                    healthy: s.healthy,
                    in_flight: s.in_flight,
                    capacity: s.capacity,
                    latency_ms: s.latency_ms,
                    ttft_ms: s.ttft_ms,
                    error_rate: s.error_rate,
                    rate_limited_ms: s.rate_limited_ms,
                }));
                (record, &self.signals)
            }
        }

        /// A feedback record.
        pub(super) fn feedback(f: &crate::policy::Feedback) -> types::Feedback {
            types::Feedback {
                request_id: f.request_id.clone(),
                target: f.target,
                score: f.score,
            }
        }

        /// A route answer, checked by the contract's rules against `target_count`.
        pub(super) fn decision(
            answer: Result<
                exports::signalbox::policy::router::Decision,
                exports::signalbox::policy::router::Rejection,
            >,
            target_count: usize,
        ) -> Result<crate::policy::RouteDecision, signalbox_contract::DecisionError> {
            match answer {
                Ok(d) => crate::policy::RouteDecision::route(d.targets, d.reason, target_count),
                Err(r) => crate::policy::RouteDecision::reject(r.status, r.message),
            }
        }
    };
}

/// The outcome record of 0.2.0, unchanged since: how the request ended, the target
/// that answered (if one did) and those that failed.
/// A later version names the outcome and adds its fields: `o => { field: o.field }`.
macro_rules! outcome_since_0_2 {
    () => {
        $crate::policy::contract::bindings::outcome_since_0_2!(o => {});
    };
    ($o:ident => { $($added:tt)* }) => {
        /// This version's outcome record.
        pub(super) fn outcome($o: &crate::policy::Outcome) -> types::Outcome {
            use crate::policy::Ending;
            types::Outcome {
                request_id: $o.request_id.clone(),
                ending: match $o.ending {
                    Ending::Completed => types::Ending::Completed,
                    Ending::Refused => types::Ending::Refused,
                    Ending::Rejected => types::Ending::Rejected,
                    Ending::Failed => types::Ending::Failed,
                    Ending::Interrupted => types::Ending::Interrupted,
                    Ending::Abandoned => types::Ending::Abandoned,
                },
                target: $o.target,
                failed_targets: $o.failed_targets.clone(),
                status: $o.status,
                latency_ms: $o.latency_ms,
                ttft_ms: $o.ttft_ms,
                input_tokens: $o.input_tokens,
                output_tokens: $o.output_tokens,
                cost_usd: $o.cost_usd,
                $($added)*
            }
        }
    };
}

pub(super) use contract_bindings;
pub(super) use outcome_since_0_2;
