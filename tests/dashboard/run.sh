#!/usr/bin/env bash
# The dashboard stage: the dashboard driven in headless Chromium over WebDriver
# (README, "Dashboard"). Installs Debian's chromium and chromium-driver when missing;
# the test starts its own chromedriver on a free loopback port with a temporary profile
# and stops it by its process id. Screenshots of each page go to
# target/dashboard-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromedriver > /dev/null || ! command -v chromium > /dev/null; then
    tests/packages.sh chromium chromium-driver
fi

# Built as tests/run's `cargo test` builds the workspace, so nothing is rebuilt; the
# browser tests are #[ignore]d in the main run because they need Chromium.
cargo test --workspace --features signalbox/otlp --test e2e -- --ignored dashboard::
