#!/usr/bin/env bash
# Every check that needs a GPU, in one run (for a machine with CUDA, PyTorch and Triton; no install step:
# the package is used from the source tree). Logs go to $OUT (or ./gpu-check-logs). TUNING=0 skips the
# warps-per-program sweep of the CUDA kernel.
set -o pipefail
OUT=${OUT:-gpu-check-logs}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
# numba runs the compiled training path of CUDA networks on the host: say whether it works here
python3 -c "import numba, numpy; numba.njit(lambda a: a + 1)(1); print('numba', numba.__version__, 'numpy', numpy.__version__)" \
    2>&1 | tail -1 | tee -a "$OUT/gpu.txt"
nproc | sed 's/^/host CPU cores: /' | tee -a "$OUT/gpu.txt"
timeout 300 python3 -m pytest -p no:cacheprovider -q -rs tests/engines/test_cuda.py tests/training/test_device_cuda.py \
    2>&1 | tee "$OUT/pytest.log"
(cd benchmarks && timeout 180 python3 async_engine.py --device cuda --batch 256 --repeats 10) 2>&1 | tee "$OUT/bench.log"
if [ "${TUNING:-1}" != 0 ]; then
    (cd benchmarks && timeout 90 python3 triton_tuning.py --batch 256 --repeats 5) 2>&1 | tee "$OUT/tuning.log"
fi
