"""The trainers and the training loop: updates, masking, schedule, resume, recalibration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import geogan.training.loop as train_module
from geogan.chips.export import export_chips
from geogan.chips.options import ExportOptions
from geogan.errors import CheckpointError, ConfigError, OutputExistsError, TrainingInterrupted
from geogan.nn.config import build_configs
from geogan.nn.model_file import read_model_file
from geogan.training.chip_folder import open_chip_folder
from geogan.training.dataset import ChipDataset, epoch_keys
from geogan.training.loop import TrainOptions, learning_rate, train
from geogan.training.steps import CycleGANTrainer, ImagePool, Pix2PixTrainer
from tests.helpers import TINY, batch, interrupt_at, pair_scene, smooth_field, write_raster

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def unpaired_chips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("unpaired")
    rng = np.random.default_rng(3)
    write_raster(tmp / "sar.tif", (smooth_field(rng, (192, 192))[None] * -20).astype(np.float32))
    _, b = pair_scene(tmp, 192)
    export_chips(tmp / "sar.tif", b, tmp / "chips",
                 ExportOptions(tile_size=64, unpaired=True, val_fraction=0.2, workers=1))
    return tmp / "chips"


def trainer(kind: str, in_bands: int = 3, out_bands: int = 3, **overrides: Any) -> Any:
    arch, config = build_configs(kind, in_bands, out_bands, 64, preset="tiny",
                                 overrides={**TINY, **overrides})
    torch.manual_seed(0)
    cls = Pix2PixTrainer if kind == "pix2pix" else CycleGANTrainer
    return cls(arch, config, CPU, "fp32")


def test_pix2pix_steps_change_the_weights_and_lower_l1_on_a_fixed_batch():
    t = trainer("pix2pix", lr=2e-3)
    data = t.to_device(batch())
    before = {k: v.clone() for k, v in t.generators["a2b"].state_dict().items()}
    d_before = {k: v.clone() for k, v in t.discriminators["b"].state_dict().items()}
    l1 = [float(t.train_step(data)["g_l1"]) for _ in range(25)]
    after = t.generators["a2b"].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    d_after = t.discriminators["b"].state_dict()
    assert any(not torch.equal(d_before[k], d_after[k]) for k in d_before)
    assert np.mean(l1[-5:]) < 0.85 * np.mean(l1[:3])
    assert l1[-1] < l1[0]


@pytest.mark.parametrize(("in_bands", "out_bands"), [(1, 3), (2, 4), (4, 3), (3, 3)])
def test_cyclegan_step_with_any_band_counts(in_bands, out_bands):
    t = trainer("cyclegan", in_bands, out_bands, pool_size=2)
    data = t.to_device(batch(a_bands=in_bands, b_bands=out_bands))
    before = {k: v.clone() for k, v in t.generators["b2a"].state_dict().items()}
    losses = t.train_step(data)
    expected = {"g_a2b", "g_b2a", "cycle_a", "cycle_b", "d_a", "d_b"}
    if in_bands == out_bands:
        expected |= {"idt_a", "idt_b"}
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    assert any(not torch.equal(before[k], v) for k, v in t.generators["b2a"].state_dict().items())


@pytest.mark.parametrize("settings", [{"masked": True}, {"masked": False}, {"d_scales": 2}])
def test_cyclegan_stacked_networks_give_the_weights_of_one_call_per_input(settings):
    """Instance-norm networks run once on their inputs stacked: the same update, within
    float tolerance, as one call per input (the step before stacking)."""
    data = batch(n=2)
    data["mask_a"][1, :, :, 40:] = 0  # a nodata edge in one chip of the batch
    runs = []
    for stacked in (True, False):
        t = trainer("cyclegan", pool_size=1, **settings)
        assert t.stack_generators and t.stack_discriminators
        t.stack_generators = t.stack_discriminators = stacked
        start = _weights(t)
        losses = [t.train_step(t.to_device(data)) for _ in range(2)]
        runs.append((losses, start, _weights(t)))
    (stacked_losses, start, stacked), (single_losses, _, single) = runs
    for first, second in zip(stacked_losses, single_losses, strict=True):
        for name, value in first.items():
            torch.testing.assert_close(value, second[name], rtol=1e-4, atol=1e-6)
    # Adam turns float noise in near-zero gradients into whole steps, so the weights are
    # compared as a whole: their difference is tiny next to the update itself.
    update = (stacked - start).abs().mean()
    assert (stacked - single).abs().mean() < 1e-2 * update  # 1e-3 × seen with 2 threads


def _weights(t: Any) -> torch.Tensor:
    """Every parameter of every network of a trainer, flattened into one vector."""
    return torch.cat([p.detach().flatten() for _, net in sorted(t.networks().items())
                      for p in net.parameters()])


def test_cyclegan_networks_that_mix_samples_are_not_stacked():
    assert not trainer("cyclegan", norm="batch").stack_generators
    assert not trainer("cyclegan", dropout=0.5).stack_generators
    assert not trainer("cyclegan", 1, 3).stack_generators  # no identity loss to stack
    assert not trainer("cyclegan", diffaugment=True).stack_discriminators
    assert not trainer("cyclegan", spectral_norm=True).stack_discriminators


def test_pix2pix_losses_ignore_what_lies_under_the_nodata_mask():
    data = batch()
    mask = torch.ones_like(data["mask_a"])
    mask[:, :, :, 32:] = 0
    first = {**data, "mask_a": mask, "mask_b": mask}
    second = {**first, "b": first["b"].clone()}
    second["b"][:, :, :, 32:] = torch.rand_like(second["b"][:, :, :, 32:])  # only under the mask
    results = []
    for sample in (first, second):
        t = trainer("pix2pix", dropout=0.0)
        results.append(t.train_step(t.to_device(sample)))
    for name in results[0]:
        assert torch.equal(results[0][name], results[1][name]), name
    # and the mask does matter when it is switched off
    t = trainer("pix2pix", dropout=0.0, masked=False)
    unmasked = t.train_step(t.to_device(second))
    assert not torch.equal(unmasked["g_l1"], results[0]["g_l1"])


def test_image_pool_returns_new_fakes_until_full_then_mixes_stored_ones():
    pool = ImagePool(3, seed=0)
    images = [torch.full((1, 1, 2, 2), float(i)) for i in range(20)]
    masks = torch.ones(1, 1, 2, 2)
    returned = [float(pool.query(img, masks)[0][0, 0, 0, 0]) for img in images]
    assert returned[:3] == [0.0, 1.0, 2.0]
    assert any(r != i for i, r in enumerate(returned[3:], 3))  # some stored fakes came back
    state = pool.state_dict()
    copy = ImagePool(3, seed=99)
    copy.load_state_dict(state)
    assert [float(copy.query(i, masks)[0].sum()) for i in images] == \
        [float(pool.query(i, masks)[0].sum()) for i in images]


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    rates = [learning_rate(s, 10, 2e-4) for s in range(10)]
    assert rates[:5] == [2e-4] * 5
    assert rates[5:] == pytest.approx([2e-4 * k / 5 for k in (5, 4, 3, 2, 1)])
    assert learning_rate(10, 10, 2e-4) == 0
    # --decay-start moves the start of the decay; its default is the papers' half.
    assert [learning_rate(s, 10, 2e-4, 0.5) for s in range(11)] == \
        [learning_rate(s, 10, 2e-4) for s in range(11)]
    late = [learning_rate(s, 8, 1.0, 0.75) for s in range(9)]
    assert late == [1.0] * 7 + [0.5, 0.0]
    assert learning_rate(0, 8, 1.0, 0.0) == 1.0 and learning_rate(4, 8, 1.0, 0.0) == 0.5
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match="decay must start"):
            build_configs("pix2pix", 3, 3, 64, overrides={"decay_start": bad})


def test_the_default_recipe_decays_over_the_last_quarter_and_the_papers_over_the_last_half():
    assert build_configs("pix2pix", 3, 3, 64)[1].decay_start == 0.75
    assert build_configs("pix2pix", 3, 3, 64, overrides={"decay_start": 0.5})[1].decay_start == 0.5
    for kind, preset in (("pix2pix", "paper"), ("pix2pix", "tiny"), ("cyclegan", "faithful")):
        assert build_configs(kind, 3, 3, 64, preset=preset)[1].decay_start == 0.5


def test_the_default_recipe_has_no_dropout_and_the_papers_keep_theirs():
    assert build_configs("pix2pix", 3, 3, 64)[0].dropout == 0.0
    assert build_configs("pix2pix", 3, 3, 64, overrides={"dropout": 0.5})[0].dropout == 0.5
    for preset in ("paper", "tiny"):
        assert build_configs("pix2pix", 3, 3, 64, preset=preset)[0].dropout == 0.5
    assert build_configs("cyclegan", 3, 3, 64)[0].dropout == 0.0  # the paper's ResNets


def test_the_default_recipe_averages_adams_second_moment_over_fewer_steps():
    for kind, preset, beta2 in (("pix2pix", "faithful", 0.99), ("pix2pix", "paper", 0.999),
                                ("pix2pix", "tiny", 0.999), ("cyclegan", "faithful", 0.999)):
        arch, config = build_configs(kind, 3, 3, 64, preset=preset)
        assert (config.beta1, config.beta2) == (0.5, beta2)
        trainer = (Pix2PixTrainer if kind == "pix2pix" else CycleGANTrainer)(
            arch, config, torch.device("cpu"), "fp32")
        for optimizer in trainer.optimizers.values():
            assert optimizer.param_groups[0]["betas"] == (0.5, beta2)
    _, config = build_configs("pix2pix", 3, 3, 64, overrides={"beta1": 0.9, "beta2": 0.999})
    assert (config.beta1, config.beta2) == (0.9, 0.999)
    for bad in ({"beta1": 1.0}, {"beta2": 1.0}, {"beta2": -0.1}):
        with pytest.raises(ConfigError, match="betas must be in"):
            build_configs("pix2pix", 3, 3, 64, overrides=bad)


def test_weight_decay_shrinks_the_weights_apart_from_the_gradients_update():
    # A zero gradient moves no weight under Adam: what a step changes is the decay alone,
    # lr * weight_decay of each weight (AdamW's decoupled decay, not an L2 term whose
    # gradient Adam would rescale).
    for decay in (0.0, 0.5):
        arch, config = build_configs("pix2pix", 3, 3, 64, preset="tiny",
                                     overrides={"weight_decay": decay, "lr": 1e-3})
        trainer = Pix2PixTrainer(arch, config, torch.device("cpu"), "fp32")
        for name, optimizer in trainer.optimizers.items():
            assert optimizer.param_groups[0]["weight_decay"] == decay, name
            params = optimizer.param_groups[0]["params"]
            before = [p.detach().clone() for p in params]
            for p in params:
                p.grad = torch.zeros_like(p)
            optimizer.step()
            for p, old in zip(params, before, strict=True):
                torch.testing.assert_close(p.detach(), old * (1 - 1e-3 * decay))
    with pytest.raises(ConfigError, match="weight decay must not be negative"):
        build_configs("pix2pix", 3, 3, 64, overrides={"weight_decay": -0.1})


def test_a_warm_start_takes_the_optimisers_state_and_keeps_this_runs_settings():
    # torch's load_state_dict would bring the saved betas too: a faithful run started from
    # a checkpoint made before beta2 became 0.99 would train at 0.999 and record 0.99.
    arch, before = build_configs("pix2pix", 3, 3, 64, preset="tiny",
                                 overrides={"beta2": 0.999})
    saved = Pix2PixTrainer(arch, before, torch.device("cpu"), "fp32")
    saved.optimizers["g"].state[saved.optimizers["g"].param_groups[0]["params"][0]] = {
        "step": torch.tensor(3.0)}
    _, now = build_configs("pix2pix", 3, 3, 64, preset="tiny", overrides={"beta2": 0.99})
    trainer = Pix2PixTrainer(arch, now, torch.device("cpu"), "fp32")
    trainer.load_state_dict(saved.state_dict())
    for optimizer in trainer.optimizers.values():
        assert optimizer.param_groups[0]["betas"] == (0.5, 0.99)
    g = trainer.optimizers["g"]
    assert g.state[g.param_groups[0]["params"][0]]["step"] == 3
    # and a run with weight decay started from one without keeps its decay
    _, decayed = build_configs("pix2pix", 3, 3, 64, preset="tiny",
                               overrides={"weight_decay": 0.5})
    trainer = Pix2PixTrainer(arch, decayed, torch.device("cpu"), "fp32")
    trainer.load_state_dict(saved.state_dict())
    assert all(o.param_groups[0]["weight_decay"] == 0.5 for o in trainer.optimizers.values())


def options(tmp_path: Path, name: str = "run", **overrides: Any) -> TrainOptions:
    return TrainOptions(preset="tiny", overrides={**TINY, **overrides},
                        checkpoint_dir=tmp_path / name, device="cpu")


def test_training_lowers_validation_l1_and_writes_log_previews_and_model(chips, tmp_path):
    report = train(chips, tmp_path / "m.pt", options(tmp_path, steps=60, val_every=20,
                                                      lr=1e-3))
    l1 = [h["l1"] for h in report.history]
    assert len(l1) == 3 and l1[-1] < l1[0]
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [20, 40, 60]
    assert {"l1", "psnr", "ssim"} <= set(log[0]["val"]) and "g_l1" in log[0]["losses"]
    previews = sorted((tmp_path / "run" / "previews").glob("*.png"))
    assert [p.name for p in previews] == ["step-0000020.png", "step-0000040.png",
                                          "step-0000060.png"]
    model = read_model_file(tmp_path / "m.pt")
    assert model.architecture.tile_size == 64 and model.training["steps"] == 60
    assert set(model.training["final"]) >= {"eval", "batch_stats", "eval_before_recalibration"}
    assert report.final["eval"]["l1"] <= report.final["eval_before_recalibration"]["l1"] + 0.05


def test_recalibration_gives_the_exact_average_of_batch_statistics(chips, tmp_path):
    train(chips, tmp_path / "m.pt", options(tmp_path, steps=4, batch_size=2))
    model = read_model_file(tmp_path / "m.pt")
    from geogan.nn.networks import build_generator, set_dropout

    generator = build_generator(model.architecture)
    generator.load_state_dict(model.generators["a2b"])
    norm = next(m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d))
    recalibrated = norm.running_mean.clone()
    seen: list[torch.Tensor] = []
    norm.register_forward_hook(lambda m, i, o: seen.append(i[0].mean(dim=(0, 2, 3))))
    folder = open_chip_folder(chips)
    dataset = ChipDataset(folder, "train", *(folder.domains[r].normalization() for r in "ab"))
    keys = epoch_keys(folder, 0, 0, augment=False)
    generator.train()
    set_dropout(generator, False)
    with torch.no_grad():
        for i in range(0, len(keys), 2):
            generator(torch.stack([dataset[k]["a"] for k in keys[i:i + 2]]))
    assert torch.allclose(recalibrated, torch.stack(seen).mean(0), atol=1e-5)


@pytest.mark.parametrize(("kind", "extra"), [
    ("pix2pix", {}), ("cyclegan", {}),
    # Warps for the first half, none after: the switch falls between the two halves.
    ("pix2pix", {"rotate": True, "photometric": 0.2, "augment_until": 0.5}),
])
def test_resume_after_ctrl_c_ends_with_the_weights_of_an_uninterrupted_run(
        kind, extra, chips, unpaired_chips, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "LOSS_SYNC_STEPS", 1)
    folder = chips if kind == "pix2pix" else unpaired_chips
    settings = {"steps": 8, "val_every": 3, "batch_size": 2, "pool_size": 3, **extra}
    train(folder, tmp_path / "whole.pt", options(tmp_path, "whole", **settings))
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(folder, tmp_path / "split.pt", options(tmp_path, "split", **settings),
              interrupt_at(5))
    assert not (tmp_path / "split.pt").exists()
    # The resumed run may use worker processes: the data order does not depend on them.
    resumed = TrainOptions(preset="tiny", overrides={**TINY, **settings, "workers": 1},
                           checkpoint_dir=tmp_path / "split", device="cpu", resume=True)
    report = train(folder, tmp_path / "split.pt", resumed)
    assert report.resumed_from == 5 and report.steps == 8
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    split = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    for name, state in whole["trainer"]["networks"].items():
        for key, value in state.items():
            assert torch.equal(value, split["trainer"]["networks"][name][key]), (name, key)
    a = read_model_file(tmp_path / "whole.pt").generators
    b = read_model_file(tmp_path / "split.pt").generators
    assert all(torch.equal(a[d][k], b[d][k]) for d in a for k in a[d])
    log = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in log]
    assert steps == [3, 5, 6, 8]


def test_existing_outputs_and_checkpoints_are_not_replaced_silently(chips, tmp_path):
    train(chips, tmp_path / "m.pt", options(tmp_path, steps=2))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        train(chips, tmp_path / "m.pt", options(tmp_path, steps=2))
    with pytest.raises(OutputExistsError, match="--resume"):
        train(chips, tmp_path / "other.pt", options(tmp_path, steps=2))
    with pytest.raises(CheckpointError, match="without --resume"):
        train(chips, tmp_path / "x.pt", TrainOptions(preset="tiny", resume=True,
                                                     checkpoint_dir=tmp_path / "none"))
    with pytest.raises(CheckpointError, match=r"other settings.*ngf"):
        train(chips, tmp_path / "m.pt", TrainOptions(
            preset="tiny", overrides={**TINY, "steps": 2, "ngf": 4}, resume=True,
            checkpoint_dir=tmp_path / "run"))
    # A run started before a preset's default changed: the message gives the saved value.
    with pytest.raises(CheckpointError, match=r"decay_start 0\.5 there, 0\.75 now"):
        train(chips, tmp_path / "m.pt", TrainOptions(
            preset="tiny", overrides={**TINY, "steps": 2, "decay_start": 0.75}, resume=True,
            checkpoint_dir=tmp_path / "run"))
    with pytest.raises(CheckpointError, match=r"beta2 0\.999 there, 0\.99 now"):
        train(chips, tmp_path / "m.pt", TrainOptions(
            preset="tiny", overrides={**TINY, "steps": 2, "beta2": 0.99}, resume=True,
            checkpoint_dir=tmp_path / "run"))
    with pytest.raises(CheckpointError, match=r"lambda_lovasz 0\.0 there, 30\.0 now, "
                                              r"lovasz_per_image False there, True now"):
        train(chips, tmp_path / "m.pt", TrainOptions(
            preset="tiny", overrides={**TINY, "steps": 2, "lambda_lovasz": 30.0,
                                      "lovasz_per_image": True},
            resume=True, checkpoint_dir=tmp_path / "run"))


def test_a_run_resumes_or_starts_whatever_translate_is_told_to_do(chips, tmp_path,
                                                                  monkeypatch):
    """``tta`` and ``unsure_below`` only say how translate runs the model and draws its
    map (a run started before they were recorded resumes under a preset that sets them),
    and the model file gets today's."""
    monkeypatch.setattr(train_module, "LOSS_SYNC_STEPS", 1)
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(chips, tmp_path / "m.pt", options(tmp_path, steps=3), interrupt_at(2))
    report = train(chips, tmp_path / "m.pt", TrainOptions(
        preset="tiny", overrides={**TINY, "steps": 3, "tta": True, "unsure_below": 0.45},
        resume=True, checkpoint_dir=tmp_path / "run", device="cpu"))
    resumed = read_model_file(tmp_path / "m.pt").architecture
    assert report.resumed_from == 2 and resumed.tta and resumed.unsure_below == 0.45
    # Nor does it stop a new run from starting from the model's weights.
    tuned = train(chips, tmp_path / "tuned.pt", TrainOptions(
        preset="tiny", overrides={**TINY, "steps": 1}, init_from=tmp_path / "m.pt",
        checkpoint_dir=tmp_path / "tuned", device="cpu"))
    tuned_architecture = read_model_file(tuned.model_path).architecture
    assert not tuned_architecture.tta and tuned_architecture.unsure_below == 0.5


def test_pix2pix_needs_paired_chips(unpaired_chips, tmp_path):
    with pytest.raises(ConfigError, match="--model cyclegan"):
        train(unpaired_chips, tmp_path / "m.pt", TrainOptions(kind="pix2pix", preset="tiny"))


def test_cyclegan_model_file_holds_both_directions(unpaired_chips, tmp_path):
    report = train(unpaired_chips, tmp_path / "c.pt", options(tmp_path, steps=3))
    model = read_model_file(tmp_path / "c.pt")
    assert set(model.generators) == {"a2b", "b2a"}
    assert (model.architecture.in_bands, model.architecture.out_bands) == (1, 3)
    assert model.normalization["a"].dtype == "float32" and model.output().dtype == "uint8"
    assert report.final["recalibrated_layers"] == 0  # InstanceNorm: nothing to recalibrate
