#!/usr/bin/env bash
# The chaos soak (docs/reliability.md, "Chaos soak"): the gateway (debug build) for
# SECONDS under mixed HTTPS load from three tenants while its upstreams fail, hang,
# reset, stall and answer garbage, its policies are swapped, rolled back and
# quarantined, its certificate is reloaded and it is stopped with SIGTERM and
# restarted; then the books are checked and every secret searched for in everything
# the run produced. Prints a summary; exits non-zero when anything is wrong.
#   tests/chaos/run.sh [SECONDS]      (default 600; tests/run runs a short one)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-600}

# The policy components the soak deploys (up to date after tests/run's own step).
cargo build-policies
# The gateway and the soak, built exactly as tests/run's `cargo test` builds the
# workspace (same packages, features and dev-dependencies), so that after it this
# builds only the soak's own binary; a narrower build (`-p signalbox -p
# signalbox-load`) resolves features differently and recompiles wasmtime.
cargo build --workspace --bins --tests --features signalbox/otlp
exec target/debug/chaos --seconds "$secs"
