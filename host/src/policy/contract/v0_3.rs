//! Contract 0.3.0, frozen (`wit/archive/0.3.0`): 0.2.0 and `state-add`.

super::bindings::contract_bindings!("../wit/archive/0.3.0", {
    fn state_add(&mut self, key: String, deltas: Vec<f64>) -> Result<Vec<f64>, types::StateError> {
        use crate::policy::state::AddError;
        self.tenant.state.add(&key, &deltas).map_err(|e| match e {
            AddError::NotNumeric => types::StateError::NotNumeric,
            AddError::State(e) => state_error(e),
        })
    }
});
super::bindings::outcome_since_0_2!();
