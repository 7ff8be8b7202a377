#!/usr/bin/env bash
# `make test`: the tests that need the local cluster and those that run their services as processes on this
# machine (DCs, brokers, portals on loopback addresses each session claims) run side by side, as two pytest
# sessions (--part, es4ps_testkit.plugins.cluster). The cluster's tests spend most of their time waiting for
# Pods, so the two parts share the cores rather than take turns. The cluster part prints as it goes; the
# other part's output follows when both are done.
#
#   hack/test.sh PYTHON [pytest arguments...]
set -uo pipefail

python=$1
shift
processes_log=$(mktemp "${TMPDIR:-/tmp}/es4ps-test-processes.XXXXXX")
trap 'rm -f "$processes_log"' EXIT

"$python" -m pytest --part=processes "$@" >"$processes_log" 2>&1 &
processes_pid=$!
"$python" -m pytest --part=cluster "$@"
cluster_rc=$?
wait "$processes_pid"
processes_rc=$?

echo
echo "==================== the tests without the cluster (run beside the ones above) ===================="
cat "$processes_log"

# 5: pytest found no test of that part among those asked for (e.g. PYTEST_ARGS=tests/unit)
if [ "$cluster_rc" -eq 5 ] && [ "$processes_rc" -eq 5 ]; then exit 5; fi
for rc in "$cluster_rc" "$processes_rc"; do
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then exit "$rc"; fi
done
exit 0
