#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine (idempotent):
#   - kubectl (the real client; tests apply patches and talk to the API-server stand-in with it)
#   - kubernetes-validate into .venv (offline schema checks of deploy/ renderings)
#   - PyYAML (only for the conformance kits in ../shared, when present)
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo "$@"; else "$@"; fi; }

if ! have kubectl; then
  echo "install-test-deps: kubectl not found; trying Debian packages" >&2
  as_root apt-get update -qq || true
  as_root apt-get install -y -qq kubectl >/dev/null 2>&1 \
    || as_root apt-get install -y -qq kubernetes-client >/dev/null 2>&1 \
    || { echo "install-test-deps: could not install kubectl; install it (https://kubernetes.io/docs/tasks/tools/) and re-run" >&2; exit 1; }
fi

if ! python3 -c 'import yaml' >/dev/null 2>&1; then
  python3 -m pip install --quiet pyyaml || echo "install-test-deps: PyYAML missing (needed only by ../shared conformance kits)" >&2
fi

# Offline Kubernetes schema validation of the rendered manifests.
if [ ! -x .venv/bin/kubernetes-validate ]; then
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install --quiet kubernetes-validate
fi

if [ -x scripts/install-envoy.sh ]; then
  scripts/install-envoy.sh
fi
