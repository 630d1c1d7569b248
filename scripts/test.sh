#!/usr/bin/env bash
# The one command that runs every test: installs test dependencies, then unit, integration and
# end-to-end tests (real TLS, real kubectl, the built meshd binary).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo test "$@"
