//! Contract 0.2.0, frozen (`wit/archive/0.2.0`): kept so that components built for it
//! run unchanged.

super::bindings::contract_bindings!("../wit/archive/0.2.0");
super::bindings::outcome_since_0_2!();
