#!/usr/bin/env bash
# The fleet stage: gateway replicas sharing limits, budgets and policies through a
# real redis-server and their usage ledger in a real PostgreSQL (README, "Running a
# fleet"). Installs both from the distribution's packages when missing; each test
# starts its own servers on free loopback ports in temporary directories and stops
# them by their process ids.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v redis-server > /dev/null || ! ls /usr/lib/postgresql/*/bin/postgres > /dev/null 2>&1; then
    tests/packages.sh redis-server postgresql
fi
# An install may start the distribution's own services; the tests do not use them.

# Built as tests/run's `cargo test` builds the workspace, so nothing is rebuilt; the
# fleet tests are #[ignore]d in the main run because they need Redis.
cargo test --workspace --features signalbox/otlp --test e2e -- --ignored fleet::
