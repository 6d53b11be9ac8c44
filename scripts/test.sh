#!/usr/bin/env bash
# The test command: install the project and what its tests need, then run the whole suite.
# Extra arguments go to pytest. Exit code 5 (no tests collected) counts as a failure here:
# a run that tested nothing proves nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh || { echo "installing system packages failed"; exit 1; }
python -m pip install -q -e '.[dev]' || { echo "pip install failed"; exit 1; }
python -m pytest "$@"
code=$?
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: treating that as a failure"
  exit 1
fi
exit "$code"
