#!/usr/bin/env bash
# Training on a lent GPU in one device call (docs/training.md, "Next time a GPU is lent"):
# generated data, then full 384 x 384 views, 8-frame clips, 8 clips a step, from the carried CPU
# weights, stopped by wall time, then the weights exported as int8 in parts small enough to
# come back from the device machine. A lent machine starts bare and is given back after the
# session, so everything it needs is made here and everything worth keeping goes to $OUT.
#
#   device run:  bash scripts/train_gpu.sh            (timeout_s 600; about MINUTES + 3 min)
#   back here:   cat <files_at>/w.part-* > runs/gpu/w.int8.pth
#
# Environment (defaults in brackets):
#   OUT      folder for the results (the device tool sets it): train.log, log.csv, val.csv, w.part-*
#   MINUTES  minutes of the training loop [6]; the rest of a call is data, validation and export
#   START    start weights [resources/training/cpu-chain.int8.pth]; "scratch" for random ones
#   BATCH [8]  FRAMES [8]  LR [1e-5]  DEVICE [cuda]  WORK, the scratch folder [/tmp/gpu-train]
#   TRAIN_CASES [120]  VAL_CASES [6]: generated cases; the seeds differ from every set that
#   selects or judges weights (val10 13, valsel 41/42, valsel2 43)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder that receives the results}"
work=${WORK:-/tmp/gpu-train}
train_cases=${TRAIN_CASES:-120}
val_cases=${VAL_CASES:-6}
mkdir -p "$work" "$OUT"

[ -d "$work/train" ] || python -m training.synthetic "$work/train" --cases "$train_cases" --seed 21 --frames 60:150
[ -d "$work/train-t" ] || python -m training.synthetic "$work/train-t" --kind translation \
    --cases $((train_cases / 2)) --seed 23 --frames 40:100
if [ ! -d "$work/val" ]; then
    python -m training.synthetic "$work/val" --cases "$val_cases" --seed 22 --frames 50:70
    python -m training.synthetic "$work/val" --kind translation --cases 2 --seed 24 --frames 30:40
fi

# Each call is a new run from START: a run folder left by an earlier call on a warm machine
# would otherwise hand its higher-numbered network file to the export below.
rm -rf "$work/run"
start=${START:-resources/training/cpu-chain.int8.pth}
if [ "$start" = scratch ]; then from=(--scratch); else from=(--weights "$start"); fi
# --iterations is only a ceiling here (the wall-time limit ends the run); the frame-skip
# schedule follows the fraction of it, so the whole run samples with the first max-skip (5).
python -m training "${from[@]}" --data "$work/train" "$work/train-t" \
    --val-data "$work/val" --val-cases $((val_cases + 2)) --static-fraction 0.2 --glide 0.2 \
    --crop-size 384 --num-frames "${FRAMES:-8}" --num-ref-frames 3 --batch-size "${BATCH:-8}" \
    --lr "${LR:-1e-5}" --start-warm 0 --end-warm 0 --iterations 1000000 --max-minutes "${MINUTES:-6}" \
    --log-every 20 --save-every 1000000 --val-every 1000000 --device "${DEVICE:-cuda}" \
    --seed 5 --out "$work/run" 2>&1 | tee "$OUT/train.log"
cp "$work/run/log.csv" "$work/run/val.csv" "$OUT/"

last=$(ls "$work/run"/network_*.pth | sort | tail -n 1)
python -m training.export_weights "$last" "$work/w.int8.pth" | tee -a "$OUT/train.log"
# The device tool returns files of at most 16 MiB.
split -b 15M "$work/w.int8.pth" "$OUT/w.part-"
echo "weights of $(basename "$last") in $(ls "$OUT"/w.part-* | wc -l) parts"
