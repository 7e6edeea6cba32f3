//! Policies built into the binary, so the gateway runs with no files at all.

/// `policies/default` compiled to a WebAssembly component by the build script.
pub const DEFAULT_POLICY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/default.wasm"));
