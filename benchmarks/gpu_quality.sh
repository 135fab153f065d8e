#!/usr/bin/env bash
# Issue 15's real-imagery screen on a lent GPU machine: quality_real.py's 1500-step
# trainings at full width, seven at once on each of two splits (14 processes, as the
# screen of 2026-11-30 ran in 300 s on an H200), in one run of under 8 minutes. On a CPU
# one such training takes 40 minutes to hours, so only a GPU gives the spread over seeds.
#
# The maps pairs and cogeo.tif lie beside the checkout (../shared/data), which does not
# travel with the tree: copy them into the git-ignored .maps/ (9 MB) here, and carry
# .maps and .whl (from gpu_wheels.sh). Then, in the repository root:
#
#   bash benchmarks/gpu_quality.sh --copy-data       # here: ../shared/data -> .maps/
#   bash benchmarks/gpu_quality.sh                   # there: both splits, 7 variants each
#   VARIANTS=faithful,faithful/shadow-0.2 bash benchmarks/gpu_quality.sh   # others
#   bash benchmarks/gpu_quality.sh --dry-run         # here, on the CPU: 2 steps, 2 variants
#
# Writes to $OUT (the device tool's folder) or /tmp/geogan-gpu: gpu.log, and for each split
# S (default, woods-both-ways) quality-S.log (the tables), results-S.json (every
# figure, per-class IoU too) and scenes-S.tar (each model's cogeo.tif preview, photo |
# map, to look at: tar -xf scenes-S.tar). The exit status is 0 only when both splits finished.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
if [[ ${1:-} == --copy-data ]]; then
    DATA=${SHARED_DATA:-../shared/data}
    rm -rf .maps && mkdir -p .maps \
        && cp -r "$DATA/maps/A_aerial" "$DATA/maps/B_map" .maps/ \
        && cp "$DATA/geotiff/rasterio/cogeo.tif" .maps/ || exit 2
    du -sh .maps
    exit 0
fi
SCRIPT=gpu_quality.sh
[[ -d $ROOT/.maps/A_aerial && -d $ROOT/.maps/B_map ]] \
    || { echo "no .maps/: run 'bash benchmarks/gpu_quality.sh --copy-data' here, then carry .maps"; exit 2; }

source "$ROOT/benchmarks/gpu_env.sh" "$@"

SEEDS=paper,faithful,faithful/seed-1,faithful/seed-2,faithful/seed-3,faithful/seed-4,faithful/seed-5
VARIANTS=${VARIANTS:-$SEEDS}
STEPS=1500
if ((DRY == 1)); then
    VARIANTS=paper,faithful
    STEPS=2
fi
JOBS=$(tr ',' '\n' <<< "$VARIANTS" | wc -l)
SPLITS=(default woods-both-ways)
WORK=$(mktemp -d /tmp/geogan-quality.XXXXXX) || die "mktemp failed"

# Both splits at once, each its own quality_real.py with one process per variant.
for split in "${SPLITS[@]}"; do
    step "quality-$split" $((DEADLINE - 10)) "$PY" benchmarks/quality_real.py \
        --data "$ROOT/.maps" --scene "$ROOT/.maps/cogeo.tif" --split "$split" \
        --variants "$VARIANTS" --steps "$STEPS" --jobs "$JOBS" --work "$WORK/$split" &
done
wait
for split in "${SPLITS[@]}"; do
    if [[ -s $WORK/$split/results.json ]]; then
        cp "$WORK/$split/results.json" "$OUT_DIR/results-$split.json"
    else
        say "quality-$split: no results.json"
        STATUS=1
    fi
    grep -q "s in all" "$OUT_DIR/quality-$split.log" || STATUS=1
    # What each model draws on cogeo.tif (photo | map), to look at: one file per split.
    scenes=$(cd "$WORK/$split" 2> /dev/null && ls -- *_scene.png 2> /dev/null)
    [[ -n $scenes ]] && tar -cf "$OUT_DIR/scenes-$split.tar" -C "$WORK/$split" $scenes
done

rm -rf "$STAGE" "$WORK"
say "done in $((SECONDS - T0)) s; logs and results in $OUT_DIR"
for split in "${SPLITS[@]}"; do
    echo
    echo "== $split =="
    sed -n '/training pairs,/,$p' "$OUT_DIR/quality-$split.log"
done
exit $STATUS
