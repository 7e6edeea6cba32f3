//! Write Signalbox routing policies in Rust.
//!
//! A policy decides which upstream model serves each request. It is compiled to a
//! WebAssembly component (`wasm32-wasip2`) and hot-loaded by the gateway per tenant.
//! This crate is everything a policy author needs: the [`Policy`] trait, the
//! [`export_policy!`] macro, the request and target types, selection helpers
//! ([`Candidates`]), the host's services ([`log`], [`state`]), and a native test
//! [`Harness`](testing::Harness).
//!
//! # A complete policy
//!
//! Send each request to the cheapest available target that serves the model asked
//! for and has room for it; reject models nobody serves.
//!
//! ```
//! use signalbox_sdk::*;
//!
//! pub struct CheapestFit;
//!
//! impl Policy for CheapestFit {
//!     type Config = NoConfig;
//!
//!     fn activate(_config: NoConfig, _targets: &[Target]) -> Result<Self, String> {
//!         Ok(CheapestFit)
//!     }
//!
//!     fn route(&self, req: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
//!         let output = req.max_output_tokens.unwrap_or(512);
//!         let fit = snapshot
//!             .candidates()
//!             .serving(&req.model)
//!             .fitting(req.input_tokens + output)
//!             .by_price(req.input_tokens, output)
//!             .available_first();
//!         if fit.is_empty() {
//!             return Decision::reject(404, format!("no target serves `{}`", req.model));
//!         }
//!         fit.into_decision("cheapest fitting")
//!     }
//! }
//!
//! export_policy!(CheapestFit);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the component is
//! `target/wasm32-wasip2/release/<crate>.wasm`, ready for `signalbox policy check`.
//!
//! # Contract version
//!
//! [`export_policy!`] embeds [`CONTRACT_VERSION`] in the component, so a gateway
//! speaking another version refuses it with "built for X, host speaks Y".

//! # Guide
//!
//! `docs/policy-sdk.md` in the repository walks through the common tasks (reading the
//! prompt, naming targets, keeping state, learning from outcomes, testing); its
//! examples are this crate's doc tests.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod decision;
mod hash;
mod host;
mod outcome;
mod policy;
mod review;
mod serving;
mod snapshot;
#[cfg(not(target_family = "wasm"))]
pub mod testing;
mod types;

#[doc(hidden)]
#[allow(missing_docs)]
pub mod __private {
    pub use crate::runtime::*;
}
mod runtime;

#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "policy",
        pub_export_macro: true,
        default_bindings_module: "signalbox_sdk::__private::bindings",
    });
}

/// The examples of the guide, `docs/policy-sdk.md`, compiled and run as doc tests
/// (only then: a copy of this crate outside the repository has no guide).
#[cfg(doctest)]
#[doc = include_str!("../../docs/policy-sdk.md")]
pub struct GuideExamples;

pub use decision::Decision;
pub use hash::weighted_pick;
pub use host::{Level, StateError, log, now_ns, random_f64, random_u64, state};
pub use outcome::{Ending, Feedback, Outcome};
pub use policy::{NoConfig, Policy, parse_config};
pub use review::{Answer, AnswerBuilder, FinishReason, Review, ToolCall};
pub use serving::serving_map;
pub use signalbox_contract::{estimate_tokens, stable_hash, unit_interval};
pub use snapshot::{Candidate, Candidates, Snapshot};
pub use types::{Endpoint, Request, RequestBuilder, Role, Signals, Target};

/// The contract (`signalbox:policy` WIT package) version this SDK implements: the
/// newest, from the contract crate the gateway shares.
pub use signalbox_contract::CONTRACT_VERSION;

/// Exports a [`Policy`] type as the component's `signalbox:policy/router`.
///
/// Use it once per policy crate (a `cdylib`). It also embeds [`CONTRACT_VERSION`] in
/// the component's `signalbox:contract-version` custom section, and
/// [`Policy::OBSERVES_OUTCOMES`] and [`Policy::REVIEWS_ANSWERS`] in its
/// `signalbox:hooks` section, where the gateway reads them.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        const _: () = {
            #[used]
            #[cfg_attr(
                target_family = "wasm",
                unsafe(link_section = "signalbox:contract-version")
            )]
            static CONTRACT_VERSION: [u8; $crate::CONTRACT_VERSION.len()] =
                $crate::__private::contract_version_bytes();

            // Which optional hooks the gateway should call (see `Policy::OBSERVES_OUTCOMES`
            // and `Policy::REVIEWS_ANSWERS`).
            #[used]
            #[cfg_attr(target_family = "wasm", unsafe(link_section = "signalbox:hooks"))]
            static HOOKS: [u8; 1] = [$crate::__private::Hooks {
                outcomes: <$policy as $crate::Policy>::OBSERVES_OUTCOMES,
                reviews: <$policy as $crate::Policy>::REVIEWS_ANSWERS,
            }
            .to_byte()];

            ::std::thread_local! {
                static ACTIVE: $crate::__private::Slot<$policy> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            #[allow(dead_code)]
            struct Exported;

            impl $crate::__private::Guest for Exported {
                fn activate(
                    config: ::std::string::String,
                    targets: ::std::vec::Vec<$crate::__private::WitTarget>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    ACTIVE.with(|slot| $crate::__private::activate(slot, config, targets))
                }

                fn route(
                    request: $crate::__private::WitRequest,
                    messages: &$crate::__private::WitMessages,
                    signals: ::std::vec::Vec<$crate::__private::WitSignals>,
                ) -> ::std::result::Result<
                    $crate::__private::WitDecision,
                    $crate::__private::WitRejection,
                > {
                    ACTIVE.with(|slot| $crate::__private::route(slot, request, messages, signals))
                }

                fn on_outcome(outcome: $crate::__private::WitOutcome) {
                    ACTIVE.with(|slot| $crate::__private::on_outcome(slot, outcome))
                }

                fn on_feedback(feedback: $crate::__private::WitFeedback) {
                    ACTIVE.with(|slot| $crate::__private::on_feedback(slot, feedback))
                }

                fn review(
                    answer: $crate::__private::WitAnswer,
                    body: &$crate::__private::WitAnswerBody,
                ) -> $crate::__private::WitVerdict {
                    ACTIVE.with(|slot| $crate::__private::review(slot, answer, body))
                }
            }

            // Native builds (unit tests) skip the exports: their symbol names only
            // make sense to a component linker.
            #[cfg(target_family = "wasm")]
    $crate::__private::export!(Exported with_types_in $crate::__private::bindings);
        };
    };
}
