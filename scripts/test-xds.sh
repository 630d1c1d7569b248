#!/usr/bin/env bash
# Installs Envoy (once) and runs the xDS test suites with the real Envoy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-envoy.sh
cargo test --test xds_ads --test xds_gateway --test xds_routes --test xds_sidecar --test xds_robustness --lib "$@"
