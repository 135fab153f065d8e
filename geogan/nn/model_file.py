"""The model file (``m.pt``): everything ``translate`` needs, and nothing that can run code.

A model file is a ``torch.save``d dict of tensors and plain values (str, int, float,
bool, None, lists and dicts of them), so it loads with ``torch.load(weights_only=True)``:
a file from an untrusted source cannot execute anything while it is read. It holds

``format``, ``version``
    ``"geogan-model"`` and :data:`MODEL_VERSION`.
``architecture``
    :class:`~geogan.nn.config.Architecture` as a dict: how to rebuild the generators.
``generators``
    ``{"a2b": state_dict}``, plus ``"b2a"`` for CycleGAN.
``normalization``
    ``{"a": ..., "b": ...}``: :class:`~geogan.nn.normalization.BandNormalization` of each
    domain, which maps raster values to the generator's [-1, 1] and back.
``output``
    dtype and nodata of the translation A → B (the target domain's own).
``training``
    The record of how the model was made: steps, epochs, final validation metrics,
    seed, chip folder, configuration and library versions.
``trained_on``
    :class:`~geogan.nn.data_profile.DataProfile`: the training chips' pixel size and each
    domain's value distribution and sharpness, which ``translate`` compares scenes with
    (and sharpens a softer scene by). Files written before them lack them and read as
    unknown (the format version is still 1).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from geogan.errors import ConfigError, ModelFileError, OutputError
from geogan.nn.config import Architecture
from geogan.nn.data_profile import DataProfile
from geogan.nn.normalization import BandNormalization
from geogan.outputs import atomic_file, check_output_file

MODEL_FORMAT = "geogan-model"
MODEL_VERSION = 1


@dataclass(frozen=True)
class ModelFile:
    """The content of a model file, checked and typed.

    Attributes:
        architecture: How to build the generators.
        generators: State dict of each direction's generator (``a2b``, ``b2a``).
        normalization: Value mapping of domain ``a`` (input) and ``b`` (target).
        training: The training record (plain values).
        trained_on: The training chips' pixel size and value distributions (unknown in
            files from before they were recorded).
        sha256: SHA-256 of the file it was read from (hex), None if not read from a file.
        path: The file it was read from, None if not read from a file.
    """

    architecture: Architecture
    generators: Mapping[str, Mapping[str, torch.Tensor]]
    normalization: Mapping[str, BandNormalization]
    training: Mapping[str, Any] = field(default_factory=dict)
    trained_on: DataProfile = field(default_factory=DataProfile)
    sha256: str | None = None
    path: str | None = None

    def output(self, direction: str = "a2b") -> BandNormalization:
        """Normalisation (dtype, nodata, value range) of what ``direction`` produces."""
        return self.normalization["b" if direction == "a2b" else "a"]

    def band_descriptions(self, domain: str) -> list[str | None]:
        """Band names of ``domain`` (``a`` or ``b``) as the training chips had them, or
        Nones where the model file does not record them."""
        bands = self.normalization[domain].bands
        recorded = (self.training.get("band_descriptions") or {}).get(domain) or []
        names = [name if isinstance(name, str) else None for name in recorded]
        return names if len(names) == bands else [None] * bands

    def to_payload(self) -> dict[str, Any]:
        """The dict that is saved: tensors and plain values only."""
        target = self.normalization["b"]
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "architecture": self.architecture.to_dict(),
            "tile_size": self.architecture.tile_size,
            "generators": {name: {k: v.detach().cpu().contiguous() for k, v in sd.items()}
                           for name, sd in self.generators.items()},
            "normalization": {name: n.to_dict() for name, n in self.normalization.items()},
            "output": {"dtype": target.dtype, "nodata": target.nodata},
            "training": dict(self.training),
            "trained_on": self.trained_on.to_dict(),
        }


def save_model_file(path: str | os.PathLike[str], model: ModelFile, *,
                    overwrite: bool = False) -> Path:
    """Write ``model`` to ``path`` atomically (temporary file, then rename).

    Raises:
        OutputExistsError: If ``path`` exists and ``overwrite`` is false.
        OutputError: If the file cannot be written.
    """
    path = Path(path)
    check_model_output(path, overwrite)
    with atomic_file(path, "model file") as temporary:
        try:
            torch.save(model.to_payload(), temporary)
        except RuntimeError as error:  # torch reports a failed write (disk full) so
            raise OutputError(f"cannot write the model file {path} ({error}); free some "
                              "space or choose another output") from None
    return path


def check_model_output(path: Path, overwrite: bool) -> None:
    """Refuse an existing output before any work is done (not only at the end).

    Raises:
        OutputExistsError: If ``path`` exists and ``overwrite`` is false.
        OutputError: If ``path`` is a folder or its folder is not writable.
    """
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give the model file's name, e.g. {path / 'm.pt'}")
    check_output_file(path, overwrite, "model file")


def read_model_file(path: str | os.PathLike[str]) -> ModelFile:
    """Read and check a model file without running any code stored in it.

    Raises:
        ModelFileError: If the file is missing, is not a geogan model file (including a
            pickle that holds code), is damaged, or was written by a newer geogan.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist; train one with `geogan train`")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a model file")
    if not os.access(path, os.R_OK):
        raise ModelFileError(f"model file {path} cannot be read (permission denied); check "
                             "its permissions")
    payload = _load_plain(path)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is not a geogan model file (it has no "
                             f"'format': '{MODEL_FORMAT}' entry)")
    version = payload.get("version")
    if not isinstance(version, int) or version > MODEL_VERSION:
        raise ModelFileError(f"{path} is model file version {version}; this geogan reads up to "
                             f"version {MODEL_VERSION}: upgrade geogan")
    try:
        architecture = Architecture.from_dict(payload["architecture"])
        normalization = {name: BandNormalization.from_dict(payload["normalization"][name])
                         for name in ("a", "b")}
        generators = payload["generators"]
        missing = [d for d in architecture.directions if d not in generators]
        if missing:
            raise ModelFileError(f"{path} lacks the {missing[0]} generator's weights")
        bad = [d for d in architecture.directions if not _is_state_dict(generators[d])]
        if bad:
            raise ModelFileError(f"{path} is damaged: the {bad[0]} weights are not tensors")
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise ModelFileError(f"{path} is damaged or incomplete ({error})") from None
    for role, norm in normalization.items():
        expected = architecture.in_bands if role == "a" else architecture.out_bands
        if norm.bands != expected:
            raise ModelFileError(f"{path} is inconsistent: domain {role} has {norm.bands} "
                                 f"normalised bands but the network expects {expected}")
    return ModelFile(architecture=architecture, generators=generators,
                     normalization=normalization, training=payload.get("training") or {},
                     trained_on=DataProfile.from_dict(payload.get("trained_on")),
                     sha256=_sha256(path), path=str(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_plain(path: Path) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on foreign pickle protocols
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # weights_only refuses anything but tensors and plain values: this is where a
        # pickle carrying code (or any foreign Python object) stops, unexecuted.
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found or "Unsupported global" in str(error):
            what = f" ({found.group(1)})" if found else ""
            raise ModelFileError(
                f"{path} is not a geogan model file: it refers to Python code{what}, which "
                "is never loaded, for safety") from None
        raise ModelFileError(_unreadable(path, error)) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise ModelFileError(_unreadable(path, error)) from None


def _unreadable(path: Path, error: Exception) -> str:
    text = str(error)
    found = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)  # torch's own reason
    detail = found.group(1) if found else (text.strip().splitlines() or [type(error).__name__])[0]
    detail = re.split(r"(?<=[a-z0-9)])\. ", detail, maxsplit=1)[0].rstrip(". ")  # 1st sentence
    if len(detail) > 120:
        detail = detail[:119].rstrip() + "…"
    return (f"{path} is not a readable model file (damaged, truncated or another format: "
            f"{detail}); give a model file written by `geogan train`")


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def describe_model(model: ModelFile) -> dict[str, Any]:
    """A JSON-ready description of a model file (what ``geogan info`` prints)."""
    from geogan.nn.networks import build_generator, count_parameters

    payload = model.to_payload()
    training = dict(payload["training"])
    training.pop("history", None)
    return {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "architecture": payload["architecture"],
        "directions": list(model.architecture.directions),
        "parameters": count_parameters(build_generator(model.architecture, "a2b")),
        "tile_size": payload["tile_size"],
        "output": payload["output"],
        "normalization": payload["normalization"],
        "trained_on": payload["trained_on"],
        "training": training,
    }
