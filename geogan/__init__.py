"""geogan: translate georeferenced rasters between domains with Pix2Pix and CycleGAN.

The public API is the names of this package; module paths below it are internal.

* Commands as functions: :func:`export_chips`, :func:`export_pairs`, :func:`train`,
  :func:`translate_raster`, :func:`translate_batch`, :func:`evaluate_rasters`,
  :func:`write_sample_pair`, :func:`run_demo`, with their option and report dataclasses.
* A trained model: :func:`load_model` gives a :class:`Translator`.
* The arcgis.learn-style API: :func:`prepare_data`, :class:`Pix2Pix`, :class:`CycleGAN`
  (``GANModel.from_model(path)`` loads a model file to fit further or predict).

The library never prints and never exits: it returns results and raises the typed
errors of :mod:`geogan.errors`. The ``geogan`` command (``geogan.cli``) is a thin layer
over it. Importing ``geogan`` imports neither torch nor matplotlib (the names above are
imported on first use), so that ``export-chips`` and ``sample-data`` start fast and run
where torch is absent. The layers below this package are described in
``docs/architecture.md`` and enforced by the import-linter contracts in ``pyproject.toml``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geogan.version import __version__

if TYPE_CHECKING:  # for type checkers only: importing them at run time would load torch
    from geogan.api.demo import DemoReport, run_demo
    from geogan.api.learn import CycleGAN, GANModel, Pix2Pix
    from geogan.api.prepare import ChipData, prepare_data
    from geogan.chips.export import export_chips, export_pairs
    from geogan.chips.options import ExportOptions, ExportReport
    from geogan.evaluation.rasters import EvaluateOptions, evaluate_rasters
    from geogan.evaluation.report import EvaluationReport
    from geogan.inference.batch import BatchReport, SceneOutcome, translate_batch
    from geogan.inference.scene import TranslateOptions, TranslateReport, translate_raster
    from geogan.inference.translator import Translator, load_model
    from geogan.sampledata.render import write_sample_pair, write_sample_pairs
    from geogan.training.loop import TrainOptions, TrainProgress, TrainReport, train

_LAZY = {
    "export_chips": "geogan.chips.export", "export_pairs": "geogan.chips.export",
    "ExportOptions": "geogan.chips.export",
    "ExportReport": "geogan.chips.export",
    "train": "geogan.training.loop", "TrainOptions": "geogan.training.loop",
    "TrainProgress": "geogan.training.loop", "TrainReport": "geogan.training.loop",
    "translate_raster": "geogan.inference.scene", "TranslateOptions": "geogan.inference.scene",
    "TranslateReport": "geogan.inference.scene",
    "translate_batch": "geogan.inference.batch", "BatchReport": "geogan.inference.batch",
    "SceneOutcome": "geogan.inference.batch",
    "evaluate_rasters": "geogan.evaluation.rasters",
    "EvaluateOptions": "geogan.evaluation.rasters",
    "EvaluationReport": "geogan.evaluation.report",
    "load_model": "geogan.inference.translator", "Translator": "geogan.inference.translator",
    "prepare_data": "geogan.api.prepare", "ChipData": "geogan.api.prepare",
    "Pix2Pix": "geogan.api.learn", "CycleGAN": "geogan.api.learn",
    "GANModel": "geogan.api.learn",
    "write_sample_pair": "geogan.sampledata.render",
    "write_sample_pairs": "geogan.sampledata.render",
    "run_demo": "geogan.api.demo", "DemoReport": "geogan.api.demo",
}

__all__ = [
    "BatchReport",
    "ChipData",
    "CycleGAN",
    "DemoReport",
    "EvaluateOptions",
    "EvaluationReport",
    "ExportOptions",
    "ExportReport",
    "GANModel",
    "Pix2Pix",
    "SceneOutcome",
    "TrainOptions",
    "TrainProgress",
    "TrainReport",
    "TranslateOptions",
    "TranslateReport",
    "Translator",
    "__version__",
    "evaluate_rasters",
    "export_chips",
    "export_pairs",
    "load_model",
    "prepare_data",
    "run_demo",
    "train",
    "translate_batch",
    "translate_raster",
    "write_sample_pair",
    "write_sample_pairs",
]


def __getattr__(name: str) -> Any:
    """Import the torch-backed API on first use, so ``import geogan`` stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geogan' has no attribute {name!r}")
