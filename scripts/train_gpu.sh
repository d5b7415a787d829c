#!/usr/bin/env bash
# Training on a GPU machine in one run bounded by wall time (docs/training.md, "On a GPU
# machine"): generated data, then full 384 x 384 views, 8-frame clips, 8 clips a step, from the
# shipped CPU weights, stopped after MINUTES of training, then the weights exported as int8.
# Everything it needs is made here, so it also runs on a fresh machine with the repository and
# requirements.txt installed (SimpleITK writes and reads the generated cases).
#
#   OUT=runs/gpu MINUTES=30 bash scripts/train_gpu.sh      (about MINUTES + 3 min in all)
#
# Environment (defaults in brackets):
#   OUT      folder for the results (required): train.log, log.csv, val.csv, w.int8.pth
#   MINUTES  minutes of the training loop [6]; data, validation and export come on top
#   START    start weights [resources/trackrad-xmem.pth]; "scratch" for random ones
#   BATCH [8]  FRAMES [8]  LR [1e-5]  DEVICE [cuda]  WORK, the scratch folder [/tmp/gpu-train]
#   TRAIN_CASES [120]  VAL_CASES [6]: generated cases; the seeds differ from every set that
#   selects or judges weights (val10 13, valsel 41/42, valsel2 43)
#   PARTS    if set (e.g. 15M), the weights are also split into parts of at most this size
#            (w.part-aa, ...; `cat w.part-* > w.int8.pth` joins them), for copying the results
#            off a machine whose transfers limit the file size
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder that receives the results}"
work=${WORK:-/tmp/gpu-train}
train_cases=${TRAIN_CASES:-120}
val_cases=${VAL_CASES:-6}
mkdir -p "$work" "$OUT"

[ -d "$work/train" ] || python -m sequences.synthetic "$work/train" --cases "$train_cases" --seed 21 --frames 60:150
[ -d "$work/train-t" ] || python -m sequences.synthetic "$work/train-t" --kind translation \
    --cases $((train_cases / 2)) --seed 23 --frames 40:100
if [ ! -d "$work/val" ]; then
    python -m sequences.synthetic "$work/val" --cases "$val_cases" --seed 22 --frames 50:70
    python -m sequences.synthetic "$work/val" --kind translation --cases 2 --seed 24 --frames 30:40
fi

# Each call is a new run from START: a run folder left by an earlier call on the same machine
# would otherwise hand its higher-numbered network file to the export below.
rm -rf "$work/run"
start=${START:-resources/trackrad-xmem.pth}
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
python -m training.export_weights "$last" "$OUT/w.int8.pth" | tee -a "$OUT/train.log"
if [ -n "${PARTS:-}" ]; then
    rm -f "$OUT"/w.part-*
    split -b "$PARTS" "$OUT/w.int8.pth" "$OUT/w.part-"
    rm "$OUT/w.int8.pth"
    echo "weights of $(basename "$last") in $(ls "$OUT"/w.part-* | wc -l) parts of at most $PARTS"
else
    echo "weights of $(basename "$last") in $OUT/w.int8.pth"
fi
