#!/usr/bin/env bash
# The CPU training chain behind the project's best CPU weights (docs/training.md), in one
# rerunnable script: data, then three stages, each starting from the last one's weights.
#   A  from scratch at 128 px (glide + translation cases), 1000 iterations, batch 4
#   B  at the inference scale (192 px patches of 192-384 px views), 1500 iterations, batch 4
#   C  the same scale at batch 16 (steadier gradient), lr 2e-5 then 5e-6
# Usage: scripts/train_cpu_chain.sh [A|B|C ...]   (default: A B C)
# Stage C's start and schedule can be changed from the environment, to continue it later, on
# another machine, from the shipped weights resources/trackrad-xmem.pth (see
# docs/experiments/2026-12-02-carried-checkpoint.md), whose optimiser state is not kept:
# START_C (weights), C_ITERATIONS (900), C_LR (2e-5), C_LR_STEPS (480; "" for none),
# C_SEED (3; the seed fixes the order of the training batches, so a continuation should take a
# new one rather than replay the batches its start was trained on), C_MAX_MINUTES (0 = none:
# stop stage C after this many minutes of training with its checkpoint saved, to bound a run),
# e.g. more of stage C at the low rate: START_C=resources/trackrad-xmem.pth C_ITERATIONS=500 C_LR=5e-6 C_LR_STEPS= C_SEED=4 $0 C
set -euo pipefail
cd "$(dirname "$0")/.."
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(A B C)

make_data() {
    [ -d data/train40 ] || python -m sequences.synthetic data/train40 --cases 40 --seed 11 --frames 50:120
    [ -d data/trans40 ] || python -m sequences.synthetic data/trans40 --kind translation --cases 40 --seed 31 --frames 40:80
    [ -d data/val3 ] || python -m sequences.synthetic data/val3 --cases 3 --seed 12 --frames 50:60
    [ -d data/transval2 ] || python -m sequences.synthetic data/transval2 --kind translation --cases 2 --seed 32 --frames 30:40
    if [ ! -d data/valmix ]; then
        mkdir -p data/valmix && ln -s ../val3/S_00{1,2,3} ../transval2/T_00{1,2} data/valmix/
    fi
}

common=(--data data/train40 data/trans40 --static-fraction 0.2 --glide 0.2 --num-frames 4
        --num-ref-frames 2 --cpu-bf16 --device cpu)

make_data
for stage in "${stages[@]}"; do
    case "$stage" in
    A)
        python -m training --scratch "${common[@]}" --val-data data/valmix --val-cases 5 \
            --crop-size 128 --batch-size 4 --iterations 1000 --lr 1e-4 --start-warm 400 \
            --end-warm 900 --log-every 25 --save-every 250 --val-every 500 --out runs/cpu-glide128
        ;;
    B)
        python -m training --weights runs/cpu-glide128/network_0001000.pth "${common[@]}" \
            --val-data data/valmix --val-cases 5 --crop-size 384 --min-crop-size 192 --patch-size 192 \
            --batch-size 4 --iterations 1500 --lr 5e-5 --lr-steps 600 --lr-gamma 0.2 --start-warm 0 \
            --end-warm 0 --log-every 25 --save-every 250 --val-every 750 --seed 1 --out runs/cpu-glide384
        ;;
    C)
        python -m training --weights "${START_C:-runs/cpu-glide384/network_0001500.pth}" "${common[@]}" \
            --crop-size 384 --min-crop-size 192 --patch-size 192 --batch-size 16 \
            --iterations "${C_ITERATIONS:-900}" --lr "${C_LR:-2e-5}" --lr-steps ${C_LR_STEPS-480} \
            --lr-gamma 0.25 --start-warm 0 --end-warm 0 --log-every 20 --save-every 60 --seed "${C_SEED:-3}" \
            --max-minutes "${C_MAX_MINUTES:-0}" \
            --out runs/cpu-b16
        ;;
    *) echo "unknown stage $stage (A, B or C)" >&2; exit 2 ;;
    esac
done
