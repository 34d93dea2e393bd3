#!/usr/bin/env bash
# Every check that needs a GPU, in one run (for a machine with CUDA, PyTorch and Triton; no install step:
# the package is used from the source tree). Logs go to $OUT (or ./gpu-check-logs).
set -o pipefail
OUT=${OUT:-gpu-check-logs}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
timeout 240 python3 -m pytest -p no:cacheprovider -q -rs tests/engines/test_cuda.py tests/training/test_device_cuda.py \
    2>&1 | tee "$OUT/pytest.log"
(cd benchmarks && timeout 120 python3 async_engine.py --device cuda --batch 256 --repeats 10) 2>&1 | tee "$OUT/bench.log"
(cd benchmarks && timeout 90 python3 triton_tuning.py --batch 256 --repeats 5) 2>&1 | tee "$OUT/tuning.log"
