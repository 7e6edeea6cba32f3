//! Host-side bindings generated from `wit/policy.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
    with: {
        "signalbox:policy/types.messages": super::request::MessagesView,
    },
});

pub use self::exports::signalbox::policy::router::{
    Decision as WitDecision, Rejection as WitRejection,
};
pub use self::signalbox::policy::types;
