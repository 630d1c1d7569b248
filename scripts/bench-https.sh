#!/usr/bin/env bash
# HTTPS load benchmark plus the idle RSS of a real `meshd serve` process.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench https_load -- "${1:-5}" "${2:-32}"
cargo build --release -q
dir=$(mktemp -d)
(cd "$dir" && exec "$OLDPWD/target/release/meshd" serve --webhook-addr 127.0.0.1:0 --monitoring-addr 127.0.0.1:0 --xds-addr 127.0.0.1:0 >/dev/null 2>&1) &
pid=$!
sleep 3
echo "idle RSS of meshd serve: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
kill -TERM $pid; wait $pid || true
rm -rf "$dir"
