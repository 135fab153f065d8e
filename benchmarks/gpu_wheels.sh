#!/usr/bin/env bash
# Fetch, on a machine that reaches PyPI, the wheels that benchmarks/gpu.sh installs on a
# lent GPU machine, which reaches no registry. Its image has Python 3.12 with torch, numpy,
# click, tqdm, attrs, certifi, pyparsing and pytest, but not rasterio (nor its cligj and
# click-plugins), affine or shapely. The wheels go to .whl/ in the repository root
# (git-ignored; about 30 MB), one version of each, the versions of constraints.txt.
#
#   bash benchmarks/gpu_wheels.sh            # then carry .whl with the tree
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(rasterio affine shapely cligj click-plugins)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64
           manylinux2014_x86_64 manylinux1_x86_64)

pinned() {  # NAME==VERSION from constraints.txt, or fail loudly
    local line
    line=$(grep -i -E "^$1==" constraints.txt) || {
        echo "gpu_wheels.sh: $1 is not pinned in constraints.txt" >&2; exit 2; }
    echo "$line"
}

rm -rf .whl && mkdir .whl
for name in "${PACKAGES[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${PLATFORMS[@]/#/--platform=}" -d .whl "$(pinned "$name")"
done
count=$(ls .whl/*.whl | wc -l)
if [[ $count -ne ${#PACKAGES[@]} ]]; then
    echo "gpu_wheels.sh: expected ${#PACKAGES[@]} wheels in .whl/, found $count" >&2
    exit 1
fi
ls -l .whl
du -sh .whl
