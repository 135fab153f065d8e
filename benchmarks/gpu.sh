#!/usr/bin/env bash
# The GPU checks and figures, in one run of under 8 minutes on a lent GPU machine.
#
# That machine has Python 3.12 with torch (CUDA), numpy, click, tqdm and pytest but reaches
# no package registry: first run benchmarks/gpu_wheels.sh where pip works, which puts the
# missing wheels (rasterio, affine, shapely, cligj, click-plugins) in .whl/, and carry
# .whl with the tree. Then, in the repository root there:
#
#   bash benchmarks/gpu.sh             # installs .whl/ into /tmp/site, then runs
#   bash benchmarks/gpu.sh --dry-run   # here, on the CPU with small sizes and .venv's
#                                      # Python: checks the script itself (~5 minutes)
#
# It runs, each step under its own time limit and all within 470 s:
#   1. the tests marked `cuda` (pytest -m cuda),
#   2. benchmarks/gpu_table.py: THE table (Pix2Pix and CycleGAN steps at batch 1 and 16,
#      images/s, translate megapixels/s at batch 8 and 64, peak GPU memory),
#   3. benchmarks/translate.py --device cuda (end to end against the bare forward),
#   4. benchmarks/train_step.py --device cuda --quick (the loop's wait for data),
#   5. benchmarks/gpu_compile.py (torch.compile and fp16 against the eager default).
# Logs and the tables go to $OUT (the device tool's folder) or /tmp/geogan-gpu: gpu.log,
# cuda-tests.log, gpu-table.log, gpu-table.md, gpu-table.json, translate.log,
# train_step.log, compile.log and compile.md (9 files). The tables are printed last. The
# exit status is 0 only when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
SCRIPT=gpu.sh

# -- 1. Python, the carried wheels and the staged tree (see gpu_env.sh) ------------------
source "$ROOT/benchmarks/gpu_env.sh" "$@"

# -- 2. the checks and the figures ------------------------------------------------------
step cuda-tests 170 "$PY" -m pytest -m cuda -p no:cacheprovider -o addopts="" -q -rs \
    --durations=10 tests/training/test_cuda.py tests/inference/test_cuda.py
if ((DRY == 0)); then
    step gpu-table 190 "$PY" benchmarks/gpu_table.py --budget 170 --co NUM_THREADS=ALL_CPUS \
        --out "$OUT_DIR/gpu-table.md"
    step translate 75 "$PY" benchmarks/translate.py --device cuda --batch-size 16 --repeats 1 \
        --sharpen 1
    step train_step 60 "$PY" benchmarks/train_step.py --device cuda --quick
    step compile 150 "$PY" benchmarks/gpu_compile.py --out "$OUT_DIR/compile.md"
else
    step gpu-table 200 "$PY" benchmarks/gpu_table.py --device cpu --tiny --budget 150 \
        --out "$OUT_DIR/gpu-table.md"
    step translate 60 "$PY" benchmarks/translate.py --device cpu --preset tiny --size 512 \
        --repeats 1 --memory-width 512 --memory-height 256 --sharpen 1
    step train_step 90 "$PY" benchmarks/train_step.py --device cpu --quick --steps 1 --no-loop
    step compile 300 "$PY" benchmarks/gpu_compile.py --device cpu --tiny --steps 1 \
        --out "$OUT_DIR/compile.md"
fi

rm -rf "$STAGE"
say "done in $((SECONDS - T0)) s; logs and the table in $OUT_DIR"
echo
if [[ -s $OUT_DIR/gpu-table.md ]]; then
    cat "$OUT_DIR/gpu-table.md"
else
    echo "no table: gpu_table.py did not finish (see $OUT_DIR/gpu-table.log)"
fi
echo
[[ -s $OUT_DIR/compile.md ]] && cat "$OUT_DIR/compile.md"
exit $STATUS
