#!/usr/bin/env bash
# The motion ablation of the XMem pipeline (docs/benchmark.md, "Motion ablation"), one
# benchmark command: the peers, XMem alone, XMem with each motion part on its own, and the
# default pipeline, with every time ratio against XMem alone.
# Usage: scripts/motion_ablation.sh DATASET OUT [WEIGHTS]   (WEIGHTS: default resolution)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 DATASET OUT [WEIGHTS]" >&2; exit 2; }
dataset=$1
out=$2
weights=${3:+@$3}

# XMem alone; then the motion flow on with every part off but one (the fused prior with and
# without the network trust); then the default, and the default aligned to the pulled mask's
# centroid instead of the two-way centre.
rows=(
    copy
    optical-flow
    template
    "xmem[motion=off]$weights"
    "xmem[motion-crop=on,motion-prior=off,align-max-px=0,max-flow-shift=0,flow-fallback=off]$weights"
    "xmem[motion-crop=off,motion-prior=confidence,trust-floor=0,align-max-px=0,max-flow-shift=0,flow-fallback=off]$weights"
    "xmem[motion-crop=off,motion-prior=confidence,align-max-px=0,max-flow-shift=0,flow-fallback=off]$weights"
    "xmem[motion-crop=off,motion-prior=off,align-max-px=2,max-flow-shift=0,flow-fallback=off]$weights"
    "xmem[motion-crop=off,motion-prior=off,align-max-px=0,max-flow-shift=0.1,flow-fallback=on]$weights"
    "xmem$weights"
    "xmem[flow-centre=pulled]$weights"
)
specs=$(IFS=,; echo "${rows[*]}")
python -m evaluation.benchmark "$dataset" --trackers "$specs" --reference "xmem[motion=off]$weights" --out "$out"
