"""The model file and the Translator: safe loading, checks, translate_array."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from geogan.errors import InputError, ModelFileError, OutputExistsError
from geogan.inference.translator import load_model
from geogan.nn.config import build_configs
from geogan.nn.model_file import MODEL_FORMAT, ModelFile, read_model_file, save_model_file
from geogan.nn.networks import build_generator
from geogan.nn.normalization import BandNormalization


def model_file(kind: str = "pix2pix", in_bands: int = 3, out_bands: int = 1,
               out_dtype: str = "float32", out_nodata: float | None = -9999.0) -> ModelFile:
    arch, _ = build_configs(kind, in_bands, out_bands, 64, preset="tiny",
                            overrides={"ngf": 4, "ndf": 4})
    torch.manual_seed(0)
    return ModelFile(
        architecture=arch,
        generators={d: build_generator(arch, d).state_dict() for d in arch.directions},
        normalization={
            "a": BandNormalization((0.0,) * in_bands, (255.0,) * in_bands, "uint8", 0.0),
            "b": BandNormalization((100.0,) * out_bands, (300.0,) * out_bands, out_dtype,
                                   out_nodata),
        },
        training={"steps": 7, "versions": {"torch": str(torch.__version__)}},
    )


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save_model_file(tmp_path / "m.pt", model_file())


def test_model_file_loads_with_weights_only_and_round_trips(saved):
    payload = torch.load(saved, weights_only=True)
    assert payload["format"] == MODEL_FORMAT and payload["tile_size"] == 64
    assert payload["output"] == {"dtype": "float32", "nodata": -9999.0}
    model = read_model_file(saved)
    original = model_file()
    assert model.architecture == original.architecture
    assert model.normalization == original.normalization
    assert all(torch.equal(v, original.generators["a2b"][k])
               for k, v in model.generators["a2b"].items())
    assert not list(saved.parent.glob(".*partial"))


def test_an_existing_model_file_is_kept_without_overwrite(saved):
    before = saved.read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        save_model_file(saved, model_file("pix2pix", 3, 3))
    assert saved.read_bytes() == before
    save_model_file(saved, model_file("pix2pix", 3, 3), overwrite=True)
    assert read_model_file(saved).architecture.out_bands == 3


def test_load_model_gives_a_translator(saved):
    translator = load_model(saved)
    assert isinstance(translator.generator, torch.nn.Module)
    assert not translator.generator.training
    assert (translator.tile_size, translator.in_bands, translator.out_bands) == (64, 3, 1)
    assert translator.output_dtype == "float32"


def test_translate_array_of_a_tile_and_of_less(saved):
    translator = load_model(saved)
    rng = np.random.default_rng(0)
    tile = rng.integers(1, 255, (3, 64, 64), dtype=np.uint8)
    out = translator.translate_array(tile)
    assert out.shape == (1, 64, 64) and out.dtype == np.float32
    assert out.min() >= 100 - 1e-3 and out.max() <= 300 + 1e-3  # the target's value range
    assert np.array_equal(out, translator.translate_array(tile))  # eval mode: deterministic
    small = translator.translate_array(tile[:, :20, :37])
    assert small.shape == (1, 20, 37)
    one_row = translator.translate_array(tile[:, :1, :5])
    assert one_row.shape == (1, 1, 5)


def test_translate_array_writes_nodata_where_the_input_is_nodata(saved):
    translator = load_model(saved)
    tile = np.full((3, 64, 64), 120, dtype=np.uint8)
    tile[:, :8] = 0  # the input's nodata in every band
    out = translator.translate_array(tile)
    assert (out[:, :8] == -9999).all() and (out[:, 8:] != -9999).all()
    valid = np.ones((64, 64), bool)
    valid[:, -4:] = False
    assert (translator.translate_array(tile, valid)[:, :, -4:] == -9999).all()


def test_translate_array_refuses_wrong_bands_or_size(saved):
    translator = load_model(saved)
    with pytest.raises(InputError, match="3 band"):
        translator.translate_array(np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(InputError, match="translate_raster"):
        translator.translate_array(np.zeros((3, 65, 64), np.uint8))


def test_cyclegan_translator_goes_both_ways(tmp_path):
    path = save_model_file(tmp_path / "c.pt", model_file("cyclegan", 1, 3, "uint8", None))
    back = load_model(path, direction="b2a")
    assert (back.in_bands, back.out_bands, back.output_dtype) == (3, 1, "uint8")
    assert back.translate_array(np.zeros((3, 64, 64), np.float32)).dtype == np.uint8
    pix = save_model_file(tmp_path / "p.pt", model_file())
    with pytest.raises(InputError, match="a2b only"):
        load_model(pix, direction="b2a")


class RunsCode:
    """A pickle that would create a file when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    # torch.save's zip format reaches the check of globals; a raw pickle of protocol 4
    # stops earlier, at an opcode weights_only does not read. Neither runs anything.
    for name, save, message in (("evil.pt", torch.save, "Python code.*never loaded"),
                                ("evil.pkl", None, "not a readable model file")):
        path = tmp_path / name
        payload = {"format": MODEL_FORMAT, "version": 1, "x": RunsCode(marker)}
        if save is not None:
            save(payload, path)
        else:
            path.write_bytes(pickle.dumps(payload))
        with pytest.raises(ModelFileError, match=message):
            read_model_file(path)
    assert not marker.exists()


@pytest.mark.parametrize(("content", "message"), [
    (b"", "not a readable model file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a readable model file"),
    ("truncated", "not a readable model file"),
    ({"weights": torch.zeros(2)}, "not a geogan model file"),
    ({"format": MODEL_FORMAT, "version": 99}, "upgrade geogan"),
    ({"format": MODEL_FORMAT, "version": 1, "architecture": {"kind": "pix2pix"}}, "damaged"),
    ("no-b2a", "lacks the b2a"),
    ("wrong-shape", "do not fit"),
])
def test_damaged_or_foreign_files_give_one_clear_error(tmp_path, saved, content, message):
    path = tmp_path / "bad.pt"
    if content == "truncated":
        path.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    elif content == "no-b2a":
        payload = model_file("cyclegan", 3, 3, "uint8", None).to_payload()
        del payload["generators"]["b2a"]
        torch.save(payload, path)
    elif content == "wrong-shape":
        payload = model_file().to_payload()
        key = next(iter(payload["generators"]["a2b"]))
        payload["generators"]["a2b"][key] = torch.zeros(1)
        torch.save(payload, path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist; train one"):
        read_model_file(tmp_path / "nope.pt")


def test_value_profiles_place_a_distribution_in_training_spreads():
    from geogan.nn.data_profile import BandProfile, DataProfile, band_shares

    rng = np.random.default_rng(0)
    base = BandProfile.of(rng.normal(100.0, 10.0, 20_000))
    assert base.distance(BandProfile.of(rng.normal(100.0, 10.0, 20_000))) < 0.05
    assert base.distance(BandProfile.of(rng.normal(110.0, 10.0, 20_000))) == pytest.approx(
        1.0, abs=0.05)  # shifted by one standard deviation
    assert base.distance(BandProfile.of(rng.normal(100.0, 20.0, 20_000))) == pytest.approx(
        0.8, abs=0.05)  # twice as wide: E|Z| = 0.8 standard deviations of difference
    shares = band_shares(np.array([[1.0, 0.0, 3.0], [1.0, 0.0, 1.0]]))
    assert shares is not None and np.allclose(shares, [[0.5, 0.75], [0.5, 0.25]])
    assert band_shares(np.ones((1, 4))) is None and band_shares(-np.ones((2, 4))) is None
    profile = DataProfile(None, {"a": (base,)}, {})
    assert DataProfile.from_dict(profile.to_dict()) == profile
    assert DataProfile.from_dict({"bands": {"a": [{"mean": 1}]}}) == DataProfile(None, {}, {})
    assert DataProfile.from_dict(None) == DataProfile()
