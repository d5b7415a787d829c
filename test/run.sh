#!/usr/bin/env bash
# Local TrackRAD harness: run the entry point on every case of a dataset as grand-challenge
# would, score it and check the runtime. Usage:
#   test/run.sh [DATASET_DIR] [--tracker NAME] [--max-seconds-per-frame S] [--docker IMAGE]
# DATASET_DIR defaults to the example case in resources/example.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m evaluation.harness "$@"
