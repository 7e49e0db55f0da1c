#!/usr/bin/env bash
# make demo: bring up the paper's 9-cluster sandbox, show it, tear it down.
# With --keep (or KEEP=1) it stays up for `kubectl qonnect tui`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${QONNECT_SANDBOX_DIR:-$root/.sandbox}
keep=${KEEP:-0}
[ "${1:-}" = "--keep" ] && keep=1
sb="$root/bin/qonnect-sandbox"

if [ -f "$dir/sandbox.json" ]; then
  echo "demo: a sandbox is already up in $dir; taking it down first"
  "$sb" down --dir "$dir"
fi
cleanup() { [ "$keep" = 1 ] || "$sb" down --dir "$dir" >/dev/null; }
trap cleanup EXIT

start=$SECONDS
"$sb" up --profile paper --dir "$dir"
echo
"$sb" status --dir "$dir"
echo
echo "demo: the paper's federation came up in $((SECONDS - start))s"
if [ "$keep" = 1 ]; then
  echo "demo: left running; source $dir/env, then: kubectl qonnect tui; $sb down --dir $dir"
fi
