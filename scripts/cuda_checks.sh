#!/usr/bin/env bash
# The checks that need a CUDA device, in one run (docs/benchmark.md, "On a GPU"): the CUDA
# tests with the unit tests of the device, core and pipeline choices, then the network's step
# time and the whole tracker's time per frame on the GPU, next to peers on the same machine's
# CPU. About 4 minutes on a 16-core machine with an H200.
#
#   OUT=runs/cuda bash scripts/cuda_checks.sh
#
# Writes gpu.txt, tests.log, network-speed.jsonl, tracker-speed.jsonl and motion-cost.jsonl to
# $OUT. The exit status is the tests'; the timings run whatever the tests gave.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder that receives the results}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "threads", torch.get_num_threads())'
} 2>&1 | tee "$OUT/gpu.txt"

python -m pytest -q -p no:cacheprovider test/test_cuda.py test/test_device.py test/test_xmem_core.py \
    test/test_xmem_memory.py test/test_xmem_network.py test/test_pipeline_tracker.py 2>&1 | tee "$OUT/tests.log"
tests=${PIPESTATUS[0]}

{
    python -m evaluation.network_speed --device cuda --precision fp16 --frames 200
    python -m evaluation.network_speed --device cuda --precision fp32 --frames 200
    python -m evaluation.network_speed --device cpu --sizes 384 --frames 30
} 2>&1 | tee "$OUT/network-speed.jsonl"

# The default first, so time_vs_first is each row's time against the default on the GPU.
python -m evaluation.tracker_speed --cases 2 --frames 100 --trackers \
    "xmem[device=cuda],xmem[device=cuda,motion=off],xmem[device=cuda,crop-size=256],xmem[device=cpu],optical-flow" \
    2>&1 | tee "$OUT/tracker-speed.jsonl"

# Where the motion parts' time goes next to a GPU network: the pipeline around a stand-in
# network (no network at all: the motion parts and post-processing on the CPU), then the
# default and XMem alone with torch's and OpenCV's CPU thread pools small and large (the two
# pools and the CUDA launches compete for the same cores).
{
    python -m evaluation.tracker_speed --cases 2 --frames 100 --trackers \
        "xmem[network=exact,motion=off],xmem[network=exact]"
    for threads in 1 4 16; do
        echo "{\"threads\": $threads}"
        OMP_NUM_THREADS=$threads OPENCV_FOR_THREADS_NUM=$threads python -m evaluation.tracker_speed \
            --cases 2 --frames 100 --trackers "xmem[device=cuda,motion=off],xmem[device=cuda]"
    done
} 2>&1 | tee "$OUT/motion-cost.jsonl"
exit "$tests"
