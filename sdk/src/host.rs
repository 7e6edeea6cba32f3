//! The host's services: logging, time, randomness and the tenant's state store.
//!
//! Inside the gateway these call the host through the contract. In a native build
//! (`cargo test` of a policy crate) they use an in-memory stand-in per thread, which
//! [`testing`](crate::testing) lets tests inspect.

use serde::{Serialize, de::DeserializeOwned};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the policy handled.
    Warn,
    /// Something the policy could not handle.
    Error,
}

/// Why a state-store write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The key is longer than the host allows (the limit in bytes).
    KeyTooLarge(u32),
    /// The value is larger than the host allows (the limit in bytes).
    ValueTooLarge(u32),
    /// The tenant's store is full.
    QuotaExceeded,
    /// The value could not be encoded as JSON.
    Encode(String),
    /// [`state::add`] met a value that is not a JSON array of numbers, or a delta
    /// that is not finite.
    NotNumeric,
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::KeyTooLarge(n) => write!(f, "state key is over the {n}-byte limit"),
            StateError::ValueTooLarge(n) => write!(f, "state value is over the {n}-byte limit"),
            StateError::QuotaExceeded => f.write_str("the tenant's state store is full"),
            StateError::Encode(e) => write!(f, "state value could not be encoded: {e}"),
            StateError::NotNumeric => {
                f.write_str("state value is not an array of numbers, or a delta is not finite")
            }
        }
    }
}

impl std::error::Error for StateError {}

/// Writes a line to the host's log (rate-limited per tenant by the host).
pub fn log(level: Level, message: &str) {
    imp::log(level, message)
}

/// Monotonic nanoseconds since an arbitrary start; only differences are meaningful.
pub fn now_ns() -> u64 {
    imp::now_ns()
}

/// A uniformly random `u64` (not for cryptography).
pub fn random_u64() -> u64 {
    imp::random_u64()
}

/// A uniformly random `f64` in `[0, 1)`.
pub fn random_f64() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The tenant's key-value state store, owned by the host.
///
/// It is shared by every instance of the tenant's policy and survives policy swaps:
/// put learned state here, not in statics. Values are stored as JSON by the typed
/// functions, or as raw bytes.
pub mod state {
    use super::*;

    /// Reads and decodes `key`; `None` when absent or not decodable as `T`.
    ///
    /// ```
    /// signalbox_sdk::state::put("pulls", &3u32).unwrap();
    /// assert_eq!(signalbox_sdk::state::get::<u32>("pulls"), Some(3));
    /// ```
    pub fn get<T: DeserializeOwned>(key: &str) -> Option<T> {
        serde_json::from_slice(&get_bytes(key)?).ok()
    }

    /// Encodes `value` as JSON and stores it under `key`.
    pub fn put<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StateError::Encode(e.to_string()))?;
        put_bytes(key, &bytes)
    }

    /// Reads the raw bytes under `key`.
    pub fn get_bytes(key: &str) -> Option<Vec<u8>> {
        imp::state_get(key)
    }

    /// Stores raw bytes under `key`.
    pub fn put_bytes(key: &str, value: &[u8]) -> Result<(), StateError> {
        imp::state_set(key, value)
    }

    /// Removes `key` (absent keys are fine).
    pub fn delete(key: &str) {
        imp::state_delete(key)
    }

    /// Adds `deltas` to the counters under `key`, element by element, as one atomic
    /// step, and returns the new counters: concurrent adds from any instance (or
    /// gateway replica) are all counted, where [`get`] then [`put`] keeps only the
    /// last writer's. The value is a JSON array of numbers, so [`get`] reads it too;
    /// an absent key counts as zeros.
    ///
    /// ```
    /// use signalbox_sdk::state;
    /// state::add("arm/a", &[1.0, 0.5]).unwrap();
    /// assert_eq!(state::add("arm/a", &[1.0, 1.0]).unwrap(), [2.0, 1.5]);
    /// assert_eq!(state::get::<(f64, f64)>("arm/a"), Some((2.0, 1.5)));
    /// ```
    pub fn add(key: &str, deltas: &[f64]) -> Result<Vec<f64>, StateError> {
        imp::state_add(key, deltas)
    }
}

#[cfg(target_family = "wasm")]
mod imp {
    use super::{Level, StateError};
    use crate::bindings::signalbox::policy::{host, types};

    pub fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => types::LogLevel::Trace,
            Level::Debug => types::LogLevel::Debug,
            Level::Info => types::LogLevel::Info,
            Level::Warn => types::LogLevel::Warn,
            Level::Error => types::LogLevel::Error,
        };
        host::log(level, message)
    }

    pub fn now_ns() -> u64 {
        host::now_ns()
    }

    pub fn random_u64() -> u64 {
        host::random_u64()
    }

    pub fn state_get(key: &str) -> Option<Vec<u8>> {
        host::state_get(key)
    }

    fn state_error(e: types::StateError) -> StateError {
        match e {
            types::StateError::KeyTooLarge(n) => StateError::KeyTooLarge(n),
            types::StateError::ValueTooLarge(n) => StateError::ValueTooLarge(n),
            types::StateError::QuotaExceeded => StateError::QuotaExceeded,
            types::StateError::NotNumeric => StateError::NotNumeric,
        }
    }

    pub fn state_set(key: &str, value: &[u8]) -> Result<(), StateError> {
        host::state_set(key, value).map_err(state_error)
    }

    pub fn state_add(key: &str, deltas: &[f64]) -> Result<Vec<f64>, StateError> {
        host::state_add(key, deltas).map_err(state_error)
    }

    pub fn state_delete(key: &str) {
        host::state_delete(key)
    }
}

#[cfg(not(target_family = "wasm"))]
pub(crate) mod imp {
    //! The native stand-in: one in-memory host per thread, so parallel tests do not
    //! see each other's state.
    use super::{Level, StateError};
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// The same limits the gateway applies by default.
    use signalbox_contract::{MAX_STATE_KEY as MAX_KEY, MAX_STATE_VALUE as MAX_VALUE};

    #[derive(Default)]
    pub struct NativeHost {
        pub state: HashMap<String, Vec<u8>>,
        pub logs: Vec<(Level, String)>,
        pub clock_ns: u64,
        pub rng: u64,
    }

    thread_local! {
        pub static HOST: RefCell<NativeHost> = RefCell::new(NativeHost {
            rng: 0x853c_49e6_748f_ea9b,
            ..NativeHost::default()
        });
    }

    pub fn log(level: Level, message: &str) {
        HOST.with(|h| h.borrow_mut().logs.push((level, message.to_owned())));
    }

    pub fn now_ns() -> u64 {
        // Advances a microsecond per reading so durations are positive and repeatable.
        HOST.with(|h| {
            let mut h = h.borrow_mut();
            h.clock_ns += 1_000;
            h.clock_ns
        })
    }

    pub fn random_u64() -> u64 {
        // splitmix64: deterministic, so native tests are repeatable.
        HOST.with(|h| {
            let mut h = h.borrow_mut();
            h.rng = h.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = h.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }

    pub fn state_get(key: &str) -> Option<Vec<u8>> {
        HOST.with(|h| h.borrow().state.get(key).cloned())
    }

    pub fn state_set(key: &str, value: &[u8]) -> Result<(), StateError> {
        if key.len() > MAX_KEY {
            return Err(StateError::KeyTooLarge(MAX_KEY as u32));
        }
        if value.len() > MAX_VALUE {
            return Err(StateError::ValueTooLarge(MAX_VALUE as u32));
        }
        HOST.with(|h| h.borrow_mut().state.insert(key.to_owned(), value.to_vec()));
        Ok(())
    }

    pub fn state_delete(key: &str) {
        HOST.with(|h| h.borrow_mut().state.remove(key));
    }

    pub fn state_add(key: &str, deltas: &[f64]) -> Result<Vec<f64>, StateError> {
        if key.len() > MAX_KEY {
            return Err(StateError::KeyTooLarge(MAX_KEY as u32));
        }
        HOST.with(|h| {
            let mut h = h.borrow_mut();
            let (values, encoded) =
                signalbox_contract::add_counters(h.state.get(key).map(Vec::as_slice), deltas)
                    .map_err(|_| StateError::NotNumeric)?;
            if encoded.len() > MAX_VALUE {
                return Err(StateError::ValueTooLarge(MAX_VALUE as u32));
            }
            h.state.insert(key.to_owned(), encoded);
            Ok(values)
        })
    }
}
