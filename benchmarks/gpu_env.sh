# Sourced by benchmarks/gpu.sh and benchmarks/gpu_quality.sh: the Python environment of a
# lent GPU machine, which has Python 3.12 with torch (CUDA), numpy, click, tqdm and pytest
# but reaches no package registry.
#
# Sourced with the script's arguments, after SCRIPT (its name, for the log) and ROOT (the
# repository root). Sets OUT_DIR ($OUT, the device tool's folder, or /tmp/geogan-gpu),
# DRY (1 with --dry-run: here, on the CPU, with .venv's Python), T0, DEADLINE (seconds
# after T0: $GPU_DEADLINE or 470, the budget being 480) and STATUS (1 once a step
# fails); starts gpu.log; defines say, die and step (below); sets PY and DEVICE; installs
# the carried wheels (.whl/, from gpu_wheels.sh) into /tmp/site; stages geogan as its
# wheel lays it out (cli/ is geogan.cli) in STAGE; puts both on PYTHONPATH, changes into
# STAGE and checks that every import works (on the GPU: that PyTorch sees it).

OUT_DIR=${OUT:-/tmp/geogan-gpu}
mkdir -p "$OUT_DIR" || exit 2
DRY=0
[[ ${1:-} == --dry-run ]] && DRY=1
DEADLINE=${GPU_DEADLINE:-470}
T0=$SECONDS
STATUS=0
: > "$OUT_DIR/gpu.log"

say() { printf '[%s %3ds] %s\n' "$SCRIPT" $((SECONDS - T0)) "$*" | tee -a "$OUT_DIR/gpu.log"; }
die() { say "STOPPED: $*"; exit 2; }

# step NAME LIMIT COMMAND...: run COMMAND for at most LIMIT seconds (less when the
# deadline is nearer), its output in $OUT_DIR/NAME.log; a failure is reported, not fatal.
step() {
    local name=$1 limit=$2 rc
    shift 2
    local left=$((DEADLINE - (SECONDS - T0)))
    ((left < limit)) && limit=$left
    if ((limit < 15)); then
        say "$name: SKIPPED, the budget of ${DEADLINE} s is spent"
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

PY=python3
DEVICE=cuda
if ((DRY == 1)); then
    [[ -x $ROOT/.venv/bin/python ]] && PY=$ROOT/.venv/bin/python
    DEVICE=cpu
    # One thread: on a small, shared CPU torch's spinning workers slow small networks.
    export OMP_NUM_THREADS=1
fi
export PYTHONUNBUFFERED=1

if ((DRY == 0)); then
    compgen -G "$ROOT/.whl/*.whl" > /dev/null \
        || die "no wheels in .whl/: run 'bash benchmarks/gpu_wheels.sh' where pip reaches PyPI, then carry .whl"
    timeout 120 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site "$ROOT"/.whl/*.whl >> "$OUT_DIR/gpu.log" 2>&1 \
        || die "pip could not install .whl/*.whl into /tmp/site (see gpu.log)"
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    say "installed: $(cd "$ROOT/.whl" && ls *.whl | tr '\n' ' ')"
fi

STAGE=$(mktemp -d /tmp/geogan-gpu-tree.XXXXXX) || die "mktemp failed"
cp -r "$ROOT"/geogan "$ROOT"/tests "$ROOT"/benchmarks "$ROOT"/pyproject.toml "$STAGE"/ \
    && cp -r "$ROOT"/cli "$STAGE/geogan/cli" || die "could not copy the tree to $STAGE"
export PYTHONPATH=$STAGE${PYTHONPATH:+:$PYTHONPATH}
cd "$STAGE" || exit 2

"$PY" - "$DEVICE" <<'PYTHON' 2>&1 | tee -a "$OUT_DIR/gpu.log"
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
PYTHON
((${PIPESTATUS[0]} == 0)) || die "the environment check failed (above)"
if ((DRY == 0)) && command -v nvidia-smi > /dev/null; then
    timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used \
        --format=csv >> "$OUT_DIR/gpu.log" 2>&1
fi
