#!/usr/bin/env bash
# Local TrackRAD harness: run the entry point on every case of a dataset as grand-challenge
# would, score it and check the runtime. Usage:
#   test/run.sh [DATASET_DIR] [--tracker NAME] [--max-seconds-per-frame S] [--docker IMAGE]
#               [entry-point options, e.g. --crop-size 256 or --weights PATH, in any order]
# DATASET_DIR defaults to the example case in resources/example; `test/run.sh --help` says more.
# PYTHON chooses the interpreter (default python3); the entry point runs with that same one.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m evaluation.harness "$@"
