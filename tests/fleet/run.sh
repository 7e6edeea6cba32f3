#!/usr/bin/env bash
# The fleet stage: gateway replicas sharing limits, budgets and policies through a
# real redis-server and their usage ledger in a real PostgreSQL (README, "Running a
# fleet"). Installs both from the distribution's packages when missing; each test
# starts its own servers on free loopback ports in temporary directories and stops
# them by their process ids.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
command -v redis-server > /dev/null || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres > /dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get > /dev/null; then
        echo "the fleet tests need: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
fi
# An install may start the distribution's own services; the tests do not use them.

# Built as tests/run's `cargo test` builds the workspace, so nothing is rebuilt; the
# fleet tests are #[ignore]d in the main run because they need Redis.
cargo test --workspace --features signalbox/otlp --test e2e -- --ignored fleet::
