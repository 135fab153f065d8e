"""The screens of ``benchmarks/gpu_quality.sh`` name variants and splits that
``benchmarks/quality_real.py`` knows: a typo there would show only on a lent GPU, after
the machine's start, and cost a lease's time."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import quality_real_module

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

SCREEN = re.compile(r"^ *([\w-]+)\)[^\n]*\n *LIST=(\S+)\n *ON=\"?([\w -]+?)\"? ;;", re.M)
"""One ``case`` branch of the script: its name, variants and splits."""


def test_every_screen_names_known_variants_and_splits() -> None:
    screens = SCREEN.findall((BENCHMARKS / "gpu_quality.sh").read_text())
    assert {name for name, _, _ in screens} == {
        "seeds", "candidates-1", "candidates-2", "candidates-3", "lighter", "decay",
        "dropout", "beta2", "weight-decay", "blur"}
    quality_real = quality_real_module()
    for name, variants, splits in screens:
        listed = variants.split(",")
        assert len(listed) == len(set(listed)), name
        assert not [v for v in listed if v not in quality_real.VARIANTS], name
        assert not [s for s in splits.split() if s not in quality_real.SPLITS], name
        # 14 trainings at once is what the H200 was measured with (two splits of 7).
        assert len(listed) * len(splits.split()) <= 14, name
