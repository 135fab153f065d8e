#!/usr/bin/env bash
# Issue 15's real-imagery screens on a lent GPU machine: quality_real.py's 1500-step
# trainings at full width, 14 at once (seven on each of two splits, or 14 on one), in one
# run of under 8 minutes: 214 s for the first, on an H200 (2026-12-04). On a CPU one such
# training takes 40 minutes to hours, so only a GPU gives the spread over seeds and every
# option at full width.
#
# The maps pairs and cogeo.tif lie beside the checkout (../shared/data), which does not
# travel with the tree: copy them into the git-ignored .maps/ (9 MB) here, and carry
# .maps and .whl (from gpu_wheels.sh). Then, in the repository root:
#
#   bash benchmarks/gpu_quality.sh --copy-data       # here: ../shared/data -> .maps/
#   bash benchmarks/gpu_quality.sh                   # there: both splits, 7 variants each
#   VARIANTS=faithful,faithful/shadow-0.2 bash benchmarks/gpu_quality.sh   # others
#   SCREEN=candidates-1 bash benchmarks/gpu_quality.sh   # 14 options at once (also -2, -3)
#   SPLITS=default SCREEN=candidates-2 bash benchmarks/gpu_quality.sh       # another split
#   SCREEN=lighter bash benchmarks/gpu_quality.sh    # maps without a discriminator or with one
#   SCREEN=decay bash benchmarks/gpu_quality.sh      # the decay at 3/4 (default) against 1/2
#   SCREEN=dropout bash benchmarks/gpu_quality.sh    # no dropout (default) against the paper's
#   SCREEN=beta2 bash benchmarks/gpu_quality.sh      # Adam's beta2 0.99 (default) against 0.999
#   SCREEN=weight-decay bash benchmarks/gpu_quality.sh   # no weight decay (default) against 0.5
#   SCREEN=blur bash benchmarks/gpu_quality.sh       # no blur of the input (default) against half
#   bash benchmarks/gpu_quality.sh --dry-run         # here, on the CPU: 2 steps, 2 variants
#
# Writes to $OUT (the device tool's folder) or /tmp/geogan-gpu: gpu.log, and for each split
# S quality-S.log (the tables), results-S.json (every figure, per-class IoU too) and
# scenes-S.tar (each model's cogeo.tif preview, photo | map, to look at). The exit status
# is 0 only when every split finished.
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

# The screens: variants and splits. `seeds` spreads the default over seeds on both
# splits; each `candidates-N` is 14 of quality_real.py's training options over today's
# `faithful` (seed 0), all at once on the split where the default meets every
# validation goal and misses the unfamiliar pairs' SSIM: together, every option.
# `lighter` checks the cheaper step the recipe took in stop 60: on a CPU without bf16 it
# trains in float32, 7.5 s a step with a discriminator, 3.5 s without. `decay` pairs
# seeds of today's default (the learning rate decayed over the last quarter, stop 64)
# with the same seeds decayed from half-way, as before (stop 64 trained five such pairs
# on a CPU); `dropout` pairs them with the same seeds with the paper's dropout, as before
# stop 65 (which trained five such pairs on a CPU); `beta2` with the same seeds under
# Adam's usual beta2 of 0.999, as before stop 66 (five such pairs on a CPU);
# `weight-decay` with the same seeds under AdamW's decoupled decay of 0.5, which gained
# validation mIoU and lost on the unfamiliar pairs in stop 69 (two trainings on a CPU);
# `blur` with the same seeds with half the chips' inputs blurred (stop 70).
case ${SCREEN:-seeds} in
    seeds)
        LIST=paper,faithful,faithful/seed-1,faithful/seed-2,faithful/seed-3,faithful/seed-4,faithful/seed-5
        ON="default woods-both-ways" ;;
    candidates-1)
        LIST=faithful/levels-7,faithful/dice-30,faithful/ms2-fm10,faithful/spectral-norm,faithful/l1-10,faithful/ema-0.99,faithful/no-gan,faithful/balance-0.5,faithful/batch-8,faithful/lr-1e-3,faithful/no-dropout,faithful/cutmix-0.5,faithful/photometric-0.4,faithful/lovasz-30
        ON=woods-both-ways ;;
    candidates-2)
        LIST=faithful/shadow-0.5,faithful/shadow-0.2,faithful/colour-0.5,faithful/balance-0,faithful/ngf-32,faithful/levels-5,faithful/lovasz-10,faithful/crop-jitter,faithful/ce-30,faithful/ce-120,faithful/smoothing-0.1,faithful/scale-1.5,faithful/beta1-0.9,faithful/judge-classes
        ON=woods-both-ways ;;
    candidates-3)
        LIST=faithful/l1-30,faithful/input-skip-32,faithful/hard-0.25,faithful/deep-0.5,faithful/deep-1,faithful/no-class-head,faithful/lr-2e-4,faithful/batch-16,faithful/smoothing-0.2,faithful/scale-2,faithful/dice-30/ms2-fm10,paper+resize,paper+rotate-scale,paper+crop-jitter
        ON=woods-both-ways ;;
    lighter)  # maps without a discriminator (today's) or with one (3 seeds each), or ndf 32
        LIST=faithful,faithful/seed-1,faithful/seed-2,faithful/with-gan,faithful/with-gan/seed-1,faithful/with-gan/seed-2,faithful/ndf-32
        ON="default woods-both-ways" ;;
    decay)
        LIST=paper,faithful,faithful/seed-1,faithful/seed-2,faithful/decay-0.5,faithful/decay-0.5/seed-1,faithful/decay-0.5/seed-2
        ON="default woods-both-ways" ;;
    dropout)
        LIST=paper,faithful,faithful/seed-1,faithful/seed-2,faithful/dropout-0.5,faithful/dropout-0.5/seed-1,faithful/dropout-0.5/seed-2
        ON="default woods-both-ways" ;;
    beta2)
        LIST=paper,faithful,faithful/seed-1,faithful/seed-2,faithful/beta2-0.999,faithful/beta2-0.999/seed-1,faithful/beta2-0.999/seed-2
        ON="default woods-both-ways" ;;
    weight-decay)
        LIST=paper,faithful,faithful/seed-1,faithful/seed-2,faithful/wd-0.5,faithful/wd-0.5/seed-1,faithful/wd-0.5/seed-2
        ON="default woods-both-ways" ;;
    blur)
        LIST=paper,faithful,faithful/seed-1,faithful/seed-2,faithful/blur-0.5,faithful/blur-0.5/seed-1,faithful/blur-0.5/seed-2
        ON="default woods-both-ways" ;;
    *) echo "unknown SCREEN '$SCREEN': seeds, candidates-1, candidates-2, candidates-3, lighter, decay, dropout, beta2, weight-decay or blur"
       exit 2 ;;
esac

source "$ROOT/benchmarks/gpu_env.sh" "$@"

VARIANTS=${VARIANTS:-$LIST}
read -r -a SPLITS <<< "${SPLITS:-$ON}"
STEPS=1500
if ((DRY == 1)); then
    VARIANTS=paper,faithful
    STEPS=2
fi
JOBS=$(tr ',' '\n' <<< "$VARIANTS" | wc -l)
WORK=$(mktemp -d /tmp/geogan-quality.XXXXXX) || die "mktemp failed"

# Every split at once, each its own quality_real.py with one process per variant.
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
    mapfile -t scenes < <(cd "$WORK/$split" 2> /dev/null && ls -- *_scene.png 2> /dev/null)
    ((${#scenes[@]})) && tar -cf "$OUT_DIR/scenes-$split.tar" -C "$WORK/$split" "${scenes[@]}"
done

rm -rf "$STAGE" "$WORK"
say "done in $((SECONDS - T0)) s; logs and results in $OUT_DIR"
for split in "${SPLITS[@]}"; do
    echo
    echo "== $split =="
    sed -n '/training pairs,/,$p' "$OUT_DIR/quality-$split.log"
done
exit $STATUS
