"""Figures of the Python API: chips and results as a grid of panels, losses as curves
(matplotlib).

:meth:`geogan.ChipData.show_batch`, :meth:`geogan.Pix2Pix.show_results` and
:meth:`geogan.Pix2Pix.plot_losses` draw here. Panels show values as the training previews do
(:func:`geogan.raster.preview.normalized_to_display`: the models' value mapping; invalid
pixels black). matplotlib is imported on first use only (``pip install 'geogan[plot]'``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from geogan.errors import ConfigError
from geogan.nn.normalization import BandNormalization
from geogan.raster.preview import normalized_to_display
from geogan.training.chip_folder import ChipFolder, DomainInfo, read_chip

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RGB = Sequence[int] | Mapping[str, Sequence[int]] | None
"""Bands to show (0-based): one or three per domain; a sequence is for the input domain
(``a``), a mapping gives ``{"a": [...], "b": [...]}``; ``None`` is the preview's rule."""

#: ``predict(pixels, convert_to, valid=...)`` of a model: raster values in, raster values out.
Predict = Callable[..., NDArray[Any]]


def chips_figure(folder: ChipFolder, split: str, seed: int, rows: int, rgb_bands: RGB
                 ) -> Figure:
    """``rows`` chips of ``split`` drawn with ``seed``: input | target when paired, a sample
    of each domain side by side when unpaired (see :meth:`geogan.ChipData.show_batch`)."""
    chips = _split_paths(folder, split)
    rng = np.random.default_rng(seed)
    picks = {d: rng.permutation(len(chips[d]))[:rows] for d in ("a", "b")}
    if folder.paired:
        picks["b"] = picks["a"]
    count = min(len(picks["a"]), len(picks["b"]))
    panels = [[chip_panel(chips[d][int(picks[d][i])], folder.domains[d].normalization(),
                           bands_for(rgb_bands, d, folder.domains[d].bands)) for d in "ab"]
              for i in range(count)]
    titles = (["input (a)", "target (b)"] if folder.paired
              else [f"{folder.domains['a'].folder}/", f"{folder.domains['b'].folder}/"])
    return figure(panels, titles)


def results_figure(folder: ChipFolder, domains: Mapping[str, DomainInfo],
                   model_norms: Mapping[str, BandNormalization], predict: Predict, rows: int,
                   rgb_bands: RGB) -> Figure:
    """``rows`` validation chips (training chips when there are none) through ``predict``:
    input | output | target when paired, a | a→b | b | b→a when unpaired (see
    :meth:`geogan.Pix2Pix.show_results`)."""
    chips = folder.val if folder.val["a"] else folder.train
    norms = {d: domains[d].normalization() for d in "ab"}
    bands = {d: bands_for(rgb_bands, d, domains[d].bands) for d in "ab"}
    panels: list[list[NDArray[np.uint8]]] = []
    for i in range(min(rows, len(chips["a"]), len(chips["b"]))):
        row = []
        for source, target in (("a", "b"),) if folder.paired else (("a", "b"), ("b", "a")):
            path = chips[source][i]
            row.append(chip_panel(path, norms[source], bands[source]))
            pixels, valid = read_chip(path)
            output = predict(pixels, "b" if target == "b" else "a", valid=valid)
            row.append(panel(model_norms[target].normalize(output), valid, bands[target]))
        if folder.paired:
            row.append(chip_panel(chips["b"][i], norms["b"], bands["b"]))
        panels.append(row)
    titles = (["input", "output", "target"] if folder.paired
              else ["a", "a → b", "b", "b → a"])
    return figure(panels, titles)


def _split_paths(folder: ChipFolder, split: str) -> dict[str, tuple[Path, ...]]:
    if split not in ("train", "val"):
        raise ConfigError(f"split must be 'train' or 'val', not {split!r}")
    chips: dict[str, tuple[Path, ...]] = getattr(folder, split)
    if not chips["a"] or not chips["b"]:
        raise ConfigError(f"{folder.root} has no {split} chips to show")
    return chips


def bands_for(rgb_bands: RGB, domain: str, count: int) -> list[int] | None:
    """The 0-based bands of ``domain`` to show, checked; ``None`` for the preview rule."""
    if rgb_bands is None:
        return None
    chosen = (rgb_bands.get(domain) if isinstance(rgb_bands, Mapping)
              else rgb_bands if domain == "a" else None)
    if chosen is None:
        return None
    bands = [int(b) for b in chosen]
    if len(bands) not in (1, 3) or not all(0 <= b < count for b in bands):
        raise ConfigError(f"rgb_bands for domain {domain} must be 1 or 3 band indices from 0 "
                          f"to {count - 1}, not {list(chosen)}")
    return bands


def panel(normalized: NDArray[Any], valid: NDArray[np.bool_],
           bands: list[int] | None) -> NDArray[np.uint8]:
    """(3, H, W) uint8 of a chip in the models' [-1, 1] space, as training previews."""
    shown = normalized if bands is None else normalized[bands]
    return normalized_to_display(shown, valid)


def chip_panel(path: Path, norm: BandNormalization, bands: list[int] | None
                ) -> NDArray[np.uint8]:
    pixels, valid = read_chip(path)
    return panel(norm.normalize(pixels), valid, bands)


def losses_figure(log: Sequence[Mapping[str, Any]], title: str) -> Figure:
    """Curves of a training log (the lines of ``log.jsonl``) against the step: above, the
    mean losses between validations (one line per loss name); below, the validation
    metrics, PSNR (dB) on a second y axis at the right (see
    :meth:`geogan.Pix2Pix.plot_losses`)."""
    figure = new_figure(7.0, 6.0)
    losses_axes, val_axes = figure.subplots(2, 1, sharex=True)
    for name in _keys(log, "losses"):
        losses_axes.plot(*_series(log, "losses", name), marker=".", label=name)
    losses_axes.set(title=title, ylabel="loss")
    losses_axes.legend(fontsize=8)
    metrics = _keys(log, "val")
    psnr_axes = val_axes.twinx() if "psnr" in metrics else None
    for i, name in enumerate(metrics):
        axes = psnr_axes if psnr_axes is not None and name == "psnr" else val_axes
        axes.plot(*_series(log, "val", name), marker=".", label=name, color=f"C{i}")
    val_axes.set(xlabel="step", ylabel=", ".join(m.upper() for m in metrics if m != "psnr"))
    if psnr_axes is not None:
        psnr_axes.set_ylabel("PSNR (dB)")
    if not metrics:
        val_axes.text(0.5, 0.5, "no validation chips", ha="center", va="center",
                      transform=val_axes.transAxes)
    else:
        lines = [line for axes in figure.axes[1:] for line in axes.get_lines()]
        val_axes.legend(lines, [str(line.get_label()) for line in lines], fontsize=8)
    return figure


def _keys(log: Sequence[Mapping[str, Any]], field: str) -> list[str]:
    """The names under ``field`` in any line of the log, in order of first appearance."""
    return list(dict.fromkeys(name for line in log for name in line.get(field) or {}))


def _series(log: Sequence[Mapping[str, Any]], field: str, name: str
            ) -> tuple[list[int], list[float]]:
    lines = [line for line in log if name in (line.get(field) or {})]
    return [int(line["step"]) for line in lines], [float(line[field][name]) for line in lines]


def new_figure(width: float, height: float) -> Figure:
    """An empty matplotlib figure of ``width`` × ``height`` inches, constrained layout.

    Raises:
        ConfigError: If matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("figures need matplotlib: pip install 'geogan[plot]'") from None
    return Figure(figsize=(width, height), layout="constrained")


def figure(rows: Sequence[Sequence[NDArray[np.uint8]]], titles: Sequence[str]) -> Figure:
    """A matplotlib figure of panels, one row per chip, titled columns."""
    figure = new_figure(2.6 * len(titles), 2.6 * len(rows))
    axes = figure.subplots(len(rows), len(titles), squeeze=False)
    for i, row in enumerate(rows):
        for j, panel in enumerate(row):
            axes[i][j].imshow(np.moveaxis(panel, 0, -1), interpolation="nearest")
            axes[i][j].set_axis_off()
            if i == 0:
                axes[i][j].set_title(titles[j], fontsize=10)
    return figure
