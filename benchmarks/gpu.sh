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
#   4. benchmarks/train_step.py --device cuda --quick (the loop's wait for data).
# Logs and the table go to $OUT (the device tool's folder) or /tmp/geogan-gpu: gpu.log,
# cuda-tests.log, gpu-table.log, gpu-table.md, gpu-table.json, translate.log and
# train_step.log (7 files). The table is printed last. The exit status is 0 only when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
OUT_DIR=${OUT:-/tmp/geogan-gpu}
mkdir -p "$OUT_DIR" || exit 2
DRY=0
[[ ${1:-} == --dry-run ]] && DRY=1
PY=python3
if ((DRY == 1)); then
    [[ -x $ROOT/.venv/bin/python ]] && PY=$ROOT/.venv/bin/python
    # One thread: on a small, shared CPU torch's spinning workers slow small networks.
    export OMP_NUM_THREADS=1
fi
export PYTHONUNBUFFERED=1
DEADLINE=${GPU_DEADLINE:-470}  # seconds from the start; the budget is 480
T0=$SECONDS
STATUS=0
: > "$OUT_DIR/gpu.log"

say() { printf '[gpu.sh %3ds] %s\n' $((SECONDS - T0)) "$*" | tee -a "$OUT_DIR/gpu.log"; }
die() { say "STOPPED: $*"; exit 2; }

# step NAME LIMIT COMMAND...: run COMMAND for at most LIMIT seconds (less when the
# deadline is nearer), its output in $OUT_DIR/NAME.log; a failure is reported, not fatal.
step() {
    local name=$1 limit=$2 rc
    shift 2
    local left=$((DEADLINE - (SECONDS - T0)))
    ((left < limit)) && limit=$left
    if ((limit < 15)); then
        say "$name: SKIPPED, the 8-minute budget is spent"
        STATUS=1
        return
    fi
    say "$name: $* (at most ${limit} s)"
    timeout -k 5 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
    rc=$?
    if ((rc == 124 || rc == 137)); then
        say "$name: TIMED OUT after ${limit} s; the end of $name.log:"
        STATUS=1
    elif ((rc != 0)); then
        say "$name: FAILED (exit $rc); the end of $name.log:"
        STATUS=1
    else
        say "$name: passed; the end of $name.log:"
    fi
    tail -n 12 "$OUT_DIR/$name.log" | sed 's/^/    /' | tee -a "$OUT_DIR/gpu.log"
}

# -- 1. what the image lacks, from the carried wheels ------------------------------------
if ((DRY == 0)); then
    compgen -G ".whl/*.whl" > /dev/null \
        || die "no wheels in .whl/: run 'bash benchmarks/gpu_wheels.sh' where pip reaches PyPI, then carry .whl"
    timeout 120 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/*.whl >> "$OUT_DIR/gpu.log" 2>&1 \
        || die "pip could not install .whl/*.whl into /tmp/site (see gpu.log)"
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    say "installed: $(cd .whl && ls *.whl | tr '\n' ' ')"
fi

# -- 2. geogan as its wheel lays it out (cli/ is geogan.cli), without building one -------
STAGE=$(mktemp -d /tmp/geogan-gpu-tree.XXXXXX) || die "mktemp failed"
cp -r geogan tests benchmarks pyproject.toml "$STAGE"/ && cp -r cli "$STAGE/geogan/cli" \
    || die "could not copy the tree to $STAGE"
export PYTHONPATH=$STAGE${PYTHONPATH:+:$PYTHONPATH}
cd "$STAGE" || exit 2

DEVICE=cuda
((DRY == 1)) && DEVICE=cpu
"$PY" - "$DEVICE" <<'EOF' 2>&1 | tee -a "$OUT_DIR/gpu.log"
import sys
missing = []
for name in ("numpy", "torch", "rasterio", "shapely", "affine", "click", "tqdm", "pytest"):
    try:
        __import__(name)
    except Exception as error:  # an import can fail with more than ImportError
        missing.append(f"{name} ({type(error).__name__}: {error})")
if missing:
    sys.exit("cannot import: " + "; ".join(missing)
             + ". Fetch the wheels with benchmarks/gpu_wheels.sh and carry .whl")
import geogan.cli.main  # noqa: F401  (the staged tree is importable as installed)
import rasterio, torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA "
      f"{torch.version.cuda}), rasterio {rasterio.__version__} (GDAL "
      f"{rasterio.__gdal_version__}), geogan from {geogan.cli.main.__file__}")
if sys.argv[1] == "cuda":
    if not torch.cuda.is_available():
        sys.exit("PyTorch sees no CUDA GPU on this machine")
    print(f"GPU: {torch.cuda.get_device_name(0)}, bf16: {torch.cuda.is_bf16_supported()}")
EOF
((${PIPESTATUS[0]} == 0)) || die "the environment check failed (above)"
if ((DRY == 0)) && command -v nvidia-smi > /dev/null; then
    timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used \
        --format=csv >> "$OUT_DIR/gpu.log" 2>&1
fi

# -- 3. the checks and the figures ------------------------------------------------------
step cuda-tests 170 "$PY" -m pytest -m cuda -p no:cacheprovider -o addopts="" -q -rs \
    --durations=10 tests/training/test_cuda.py tests/inference/test_cuda.py
if ((DRY == 0)); then
    step gpu-table 190 "$PY" benchmarks/gpu_table.py --budget 170 --co NUM_THREADS=ALL_CPUS \
        --out "$OUT_DIR/gpu-table.md"
    step translate 75 "$PY" benchmarks/translate.py --device cuda --batch-size 16 --repeats 1
    step train_step 60 "$PY" benchmarks/train_step.py --device cuda --quick
else
    step gpu-table 200 "$PY" benchmarks/gpu_table.py --device cpu --tiny --budget 150 \
        --out "$OUT_DIR/gpu-table.md"
    step translate 60 "$PY" benchmarks/translate.py --device cpu --preset tiny --size 512 \
        --repeats 1 --memory-width 512 --memory-height 256
    step train_step 90 "$PY" benchmarks/train_step.py --device cpu --quick --steps 1 --no-loop
fi

rm -rf "$STAGE"
say "done in $((SECONDS - T0)) s; logs and the table in $OUT_DIR"
echo
if [[ -s $OUT_DIR/gpu-table.md ]]; then
    cat "$OUT_DIR/gpu-table.md"
else
    echo "no table: gpu_table.py did not finish (see $OUT_DIR/gpu-table.log)"
fi
exit $STATUS
