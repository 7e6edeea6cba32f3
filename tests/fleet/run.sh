#!/usr/bin/env bash
# The fleet stage: gateway replicas sharing limits and budgets through a real
# redis-server (README, "Running a fleet"). Installs Redis from the distribution's
# packages when it is missing; each test starts its own server on a free loopback port
# in a temporary directory and stops it by its process id.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v redis-server > /dev/null; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get > /dev/null; then
        echo "the fleet tests need redis-server: apt-get install -y redis-server" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server > /dev/null
fi
# An install may start the distribution's own service; the tests do not use it.

# Built as tests/run's `cargo test` builds the workspace, so nothing is rebuilt; the
# fleet tests are #[ignore]d in the main run because they need Redis.
cargo test --workspace --features signalbox/otlp --test e2e -- --ignored fleet::
