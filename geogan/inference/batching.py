"""How many windows ``translate`` runs through the generator per call by default.

Kept apart from :mod:`geogan.inference.translator`, which imports torch, so that the
command line can quote these bounds in its help without loading torch.
"""

CPU_BATCH = 8
"""Windows per generator call on a CPU (and the least on a GPU)."""

MAX_AUTO_BATCH = 16
"""The most windows per call a GPU's free memory may choose. On an H200 the paper U-Net's
bf16 forward gains nothing past 16 windows, while the reader and writer, which set the
pace there, keep up worst with larger batches: a 4096² scene took 1.14 s at 16 and 32,
1.5–2.1 s at 64 (``benchmarks/gpu_table.py``, 2026-12-04)."""
