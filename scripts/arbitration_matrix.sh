#!/usr/bin/env bash
# The arbitration matrix (docs/benchmark.md, "Arbitration matrix"): on each measurement set,
# one benchmark command with the peers and, for every network (the four stand-ins built from
# the labels and the real one), the network alone, each motion part on its own, the default
# without the flow's own evidence, and the default. `python -m evaluation.acceptance
# --arbitration OUT/*` then checks the bar.
# Usage: scripts/arbitration_matrix.sh OUT [WEIGHTS]
#   NETWORKS (default "exact jitter creep lost xmem"; xmem is the real network, with WEIGHTS
#   or the default weights) and SETS (default "val10 hard12 realval flowfail", folders under
#   data/ made as docs/benchmark.md says) choose the rows and the sets; PARTS=short keeps only
#   each network alone and the default.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 OUT [WEIGHTS]" >&2; exit 2; }
out=$1
weights=${2:+@$2}
networks=${NETWORKS:-exact jitter creep lost xmem}
sets=${SETS:-val10 hard12 realval flowfail}

parts=(
    "motion=off"
    "motion-crop=on,motion-prior=off,trust-floor=0,align-max-px=0,max-flow-shift=0,flow-fallback=off"
    "motion-crop=off,motion-prior=confidence,align-max-px=0,max-flow-shift=0,flow-fallback=off"
    "motion-crop=off,motion-prior=off,align-max-px=2,max-flow-shift=0,flow-fallback=off"
    "motion-crop=off,motion-prior=off,align-max-px=0,max-flow-shift=0.1,flow-fallback=on"
    "flow-credible=0,flow-max-residual=0"
    ""
)
[ "${PARTS:-all}" = short ] && parts=("motion=off" "")
rows=(copy optical-flow)
for network in $networks; do
    for part in "${parts[@]}"; do
        if [ "$network" = xmem ]; then
            settings=$part
            suffix=$weights
        else
            settings="network=$network${part:+,$part}"
            suffix=""
        fi
        rows+=("xmem${settings:+[$settings]}$suffix")
    done
done
specs=$(IFS=,; echo "${rows[*]}")
for set in $sets; do
    python -m evaluation.benchmark "data/$set" --trackers "$specs" --out "$out/$set"
done
