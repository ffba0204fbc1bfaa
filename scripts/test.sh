#!/usr/bin/env bash
# The whole suite: typecheck, unit tests, integration tests. Every part runs even when an earlier one failed, so one
# failing unit test never hides the integration results; the exit status is non-zero when any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
declare -a names=() codes=()
out=$(mktemp)
trap 'rm -f "$out"' EXIT
part() {
  local name=$1; shift
  echo "=== $name: $*"
  local t0=$SECONDS
  "$@" 2>&1 | tee -a "$out"
  local rc=${PIPESTATUS[0]}
  names+=("$name"); codes+=("$rc")
  echo "=== $name: exit $rc after $(( SECONDS - t0 )) s"
}
part typecheck npm run --silent typecheck
part unit npm run --silent test:unit
part integration npm run --silent test:integration
failed=0
echo "=== summary"
for i in "${!names[@]}"; do
  if [ "${codes[$i]}" = 0 ]; then echo "  ${names[$i]}: passed"; else echo "  ${names[$i]}: FAILED (exit ${codes[$i]})"; failed=1; fi
done
# a skipped test is not a passed one: list each with its reason (node:test's spec reporter marks them "# <reason>"
# after a "﹣"), e.g. the real kube-ovn-controller and Multus tests when their fixtures were not built
skipped=$(grep -c '^[[:space:]]*﹣ ' "$out" || true)
if [ "$skipped" -gt 0 ]; then
  echo "  skipped (not run, not counted as passed): $skipped"
  grep '^[[:space:]]*﹣ ' "$out" | sed 's/^[[:space:]]*﹣ /    /'
fi
exit "$failed"
