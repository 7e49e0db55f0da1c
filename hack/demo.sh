#!/usr/bin/env bash
# make demo: the main job on the sandbox (see qonnect-sandbox demo --help).
# KEEP=1 (or --keep) leaves the sandbox up for `kubectl qonnect tui`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${QONNECT_SANDBOX_DIR:-$root/.sandbox}
sb="$root/bin/qonnect-sandbox"
args=()
{ [ "${KEEP:-0}" = 1 ] || [ "${1:-}" = "--keep" ]; } && args+=(--keep)
if [ -f "$dir/sandbox.json" ]; then
  echo "demo: a sandbox is already up in $dir; taking it down first"
  "$sb" down --dir "$dir"
fi
exec "$sb" demo --dir "$dir" "${args[@]}"
