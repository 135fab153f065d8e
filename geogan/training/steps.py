"""One optimisation step of Pix2Pix and of CycleGAN, as the papers define them.

A trainer owns its networks and optimisers and turns a batch of the one sample contract
(``a``, ``b``, ``mask_a``, ``mask_b``: see :mod:`geogan.training.dataset`) into one update. The
step reads top-down like the reference code (forward, discriminator, generator) but
takes its settings from typed configs, never from a global namespace.

Nodata: with ``config.masked`` every loss leaves out pixels that are invalid in the
chips it compares. Invalid pixels are already 0 in the normalised inputs; fakes are
zeroed there too before the discriminator sees them, and the discriminator's patch
losses are weighted by the valid fraction under each patch, so scene edges are never
learnt as content.

Speed without changing the maths: networks and batches are channels-last, convolutions
run under autocast where the precision asks for it, Adam is fused where PyTorch offers
it, and losses stay on the device (no host synchronisation per step).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from geogan.nn.config import Architecture, TrainConfig
from geogan.nn.devices import autocast
from geogan.nn.losses import (
    class_targets,
    expected_colours,
    feature_matching,
    gan_loss,
    hardest_cross_entropy,
    masked_cldice,
    masked_dice,
    masked_l1,
    masked_lovasz,
    patch_weights,
)
from geogan.nn.networks import (
    MultiScaleDiscriminator,
    PatchDiscriminator,
    UNetGenerator,
    build_discriminator,
    build_generator,
    channels_last,
    has_dropout,
)
from geogan.training import augment
from geogan.training.deep_supervision import DecoderHeads, deep_supervision_loss
from geogan.training.distributed import SINGLE, ProcessGroup, wrap
from geogan.training.weight_average import WeightAverage

Batch = Mapping[str, Tensor]


class GANTrainer(ABC):
    """Networks, optimisers and the update rule of one GAN.

    Args:
        architecture: The networks to build.
        config: Loss weights, optimiser settings and masking.
        device: Where to train.
        precision: ``fp32``, ``bf16`` or ``fp16`` (resolved, not ``auto``).
        group: The training processes; with more than one, every forward pass whose
            gradients update a network goes through its DistributedDataParallel
            wrapper (:attr:`synced`), which averages the gradients across processes.
        class_colours: The target palette in normalised units (K, out_bands), when the
            architecture has a class head: each target pixel's class is the colour it
            is clearly nearest to.
        class_weights: Cross-entropy weight of each class (K,), or None for equal ones.
    """

    def __init__(self, architecture: Architecture, config: TrainConfig, device: torch.device,
                 precision: str, group: ProcessGroup = SINGLE,
                 class_colours: Tensor | None = None,
                 class_weights: Tensor | None = None) -> None:
        self.architecture = architecture
        self.class_colours = None if class_colours is None else class_colours.to(device)
        self.class_weights = None if class_weights is None else class_weights.to(device)
        self.config = config
        self.device = device
        self.precision = precision
        #: Whether the random warps, CutMix and the input's jitter apply to this step
        #: (the loop turns them off for the last steps: ``TrainConfig.augment_until``).
        self.augmenting = True
        self.criterion_gan = gan_loss(config.gan_loss)
        # Channels-last speeds up BatchNorm networks under reduced precision, but slows
        # them in float32 and slows InstanceNorm/reflection-padded ones in both (measured
        # on the development CPU: U-Net forward+backward 0.25 s vs 0.27 s in bf16,
        # 0.40 s vs 0.27 s in fp32; ResNet 0.62 s vs 0.55 s in bf16).
        self.memory_format = (torch.channels_last
                              if precision != "fp32" and architecture.norm == "batch"
                              else torch.contiguous_format)
        self.generators: dict[str, nn.Module] = {
            d: self._prepare(build_generator(architecture, d)) for d in architecture.directions
        }
        self.discriminators: dict[str, nn.Module] = {
            name: self._prepare(build_discriminator(architecture, channels))
            for name, channels in self._discriminator_inputs().items()
        }
        # Copies of the generators, made before the decoder heads hook into them.
        self.averages = {d: WeightAverage(g, config.ema) for d, g in self.generators.items()
                         } if config.ema > 0 else {}
        self.decoder_heads: dict[str, DecoderHeads] = {}
        generator = self.generators.get("a2b")
        if (config.deep_supervision > 0 and isinstance(generator, UNetGenerator)
                and generator.classes):
            heads = DecoderHeads(generator)
            self._prepare(heads)
            self.decoder_heads["a2b"] = heads
        # The same networks, wrapped for DDP when distributed (else the same objects).
        # Forward passes that only feed another network's update (a frozen
        # discriminator judging fakes) use the plain networks: DDP would wait for
        # gradients that never come.
        self.synced: dict[str, nn.Module] = {
            name: wrap(module, group, device) for name, module in self.networks().items()}
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "g": self._adam(p for g in self.generators.values() for p in g.parameters()),
            "d": self._adam(p for d in self.discriminators.values() for p in d.parameters()),
        }
        if self.decoder_heads:  # their own optimiser: a checkpoint without them still loads
            self.optimizers["h"] = self._adam(
                p for h in self.decoder_heads.values() for p in h.parameters())
        # fp16 needs loss scaling; bf16 and fp32 do not (the scaler is then a no-op).
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        # Augmentation draws from its own generator, kept in checkpoints.
        self.augment_rng = torch.Generator().manual_seed(config.seed + 7919)

    @property
    def output_generators(self) -> dict[str, nn.Module]:
        """The generators the model file keeps: the weight averages when training keeps
        them (``config.ema``), else the trained networks themselves."""
        if self.averages:
            return {d: average.average for d, average in self.averages.items()}
        return self.generators

    @abstractmethod
    def _discriminator_inputs(self) -> dict[str, int]:
        """Name → input channels of each discriminator."""

    @abstractmethod
    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        """One update of discriminator(s) and generator(s); returns detached losses."""

    @abstractmethod
    def validation_outputs(self, batch: Batch, paired: bool) -> tuple[Tensor, Tensor, Tensor]:
        """(output, reference, mask) to score on a validation batch (generators in the
        mode the caller set); ``paired`` says whether ``b`` is the target of ``a``."""

    def networks(self) -> dict[str, nn.Module]:
        """Every network by a stable name (``g_a2b``, ``d_b``, ...)."""
        named = {f"g_{d}": g for d, g in self.generators.items()}
        named.update({f"d_{n}": d for n, d in self.discriminators.items()})
        named.update({f"h_{d}": h for d, h in self.decoder_heads.items()})
        return named

    def set_learning_rate(self, lr: float) -> None:
        """Set the learning rate of every optimiser (the schedule is applied per step)."""
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        """Everything that changes during training, for checkpoints."""
        return {
            "networks": {n: m.state_dict() for n, m in self.networks().items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
            "augment_rng": self.augment_rng.get_state(),
            "averages": {d: a.state_dict() for d, a in self.averages.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        # Decoder heads a checkpoint lacks (its run had no deep supervision) start afresh.
        for name, module in self.networks().items():
            if name in state["networks"] or not name.startswith("h_"):
                module.load_state_dict(state["networks"][name])
        for name, optimizer in self.optimizers.items():
            if name in state["optimizers"] or name != "h":
                _load_moments(optimizer, state["optimizers"][name])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if "augment_rng" in state:
            self.augment_rng.set_state(state["augment_rng"].cpu())
        for direction, average in self.averages.items():
            saved = (state.get("averages") or {}).get(direction)
            if saved is not None:
                average.load_state_dict(saved)
            else:  # warm start from a run without averages: start from its weights
                average.average.load_state_dict(self.generators[direction].state_dict())

    def to_device(self, batch: Batch) -> dict[str, Tensor]:
        """Move a batch to the training device, in the networks' memory format."""
        return {k: v.to(self.device, non_blocking=True).contiguous(
                    memory_format=self.memory_format) for k, v in batch.items()}

    def _prepare(self, module: nn.Module) -> nn.Module:
        module = module.to(self.device)
        if self.memory_format == torch.channels_last:
            module = channels_last(module)
        return module.train()

    def _adam(self, params: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
        config = self.config
        # AdamW decouples the decay from the gradient's update (Adam's own switch for that
        # is newer than the torch versions geogan supports); without decay it is plain Adam.
        optimiser = torch.optim.AdamW if config.weight_decay > 0 else torch.optim.Adam
        return optimiser(list(params), lr=config.lr, betas=(config.beta1, config.beta2),
                         weight_decay=config.weight_decay, fused=True)

    def _mask(self, mask: Tensor) -> Tensor | None:
        return mask if self.config.masked else None

    def _augmented(self, batch: Batch) -> dict[str, Tensor]:
        """The batch after the configured augmentations (none while :attr:`augmenting` is
        off), with the target's class map (``classes``, -100 where a pixel has no clear
        class) when there is a class head."""
        config = self.config
        out = dict(batch)
        if self.class_colours is not None:
            out["classes"] = class_targets(out["b"], self.class_colours, out["mask_b"],
                                           edges=config.class_edges)
        if not self.augmenting:
            return out
        if config.geometric:
            out = augment.geometric(out, rotate=config.rotate, scale_jitter=config.scale_jitter,
                                    crop_jitter=config.crop_jitter, generator=self.augment_rng)
        if config.cutmix > 0:
            out = augment.cutmix(out, config.cutmix, self.augment_rng)
        if config.geometric or config.cutmix > 0:  # both give new tensors in their own layout
            out = {k: v.contiguous(memory_format=self.memory_format) if v.dim() == 4 else v
                   for k, v in out.items()}
        if config.photometric > 0:
            out["a"] = augment.photometric(out["a"], config.photometric, self.augment_rng)
        if config.colour > 0:
            out["a"] = augment.colour(out["a"], config.colour, self.augment_rng)
        if config.shadow > 0:
            out["a"] = augment.shadow(out["a"], config.shadow, self.augment_rng)
        if config.blur > 0:
            out["a"] = augment.blur(out["a"], config.blur, self.augment_rng)
        if config.unsharp > 0:
            out["a"] = augment.unsharp(out["a"], config.unsharp, self.augment_rng)
        return out

    def _judged(self, images: Tensor) -> Tensor:
        """What a discriminator sees: ``images`` after DiffAugment when configured."""
        if self.config.diffaugment:
            return augment.diff_augment(images, self.augment_rng)
        return images

    @contextmanager
    def _decoder_levels(self) -> Iterator[dict[int, Tensor]]:
        """The supervised decoder levels of A → B passes in this block, by level; empty
        without deep supervision."""
        heads = self.decoder_heads.get("a2b")
        if heads is None:
            yield {}
            return
        with heads.capture() as levels:
            yield levels

    def _average(self) -> None:
        for average in self.averages.values():
            average.update()

    def _gan(self, prediction: Tensor | list[Tensor], real: bool, mask: Tensor | None
             ) -> Tensor:
        """The GAN loss of a discriminator's logits; of a multi-scale one's, the mean over
        its scales."""
        if isinstance(prediction, list):
            return torch.stack([self._gan(p, real, mask) for p in prediction]).mean()
        weight = None if mask is None else patch_weights(mask, prediction.shape[-2:])
        return self.criterion_gan(prediction, real, weight)

    def _update(self, loss: Tensor, *optimizers: torch.optim.Optimizer) -> None:
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        for optimizer in optimizers:
            self.scaler.step(optimizer)


def _per_scale(features: list[Any]) -> list[list[Tensor]]:
    """Discriminator features as one list per scale (a single PatchGAN has one)."""
    return features if isinstance(features[0], list) else [features]


def _requires_grad(modules: Mapping[str, nn.Module], flag: bool) -> None:
    for module in modules.values():
        module.requires_grad_(flag)


class Pix2PixTrainer(GANTrainer):
    """Isola et al. 2017: conditional GAN loss + λ·L1; D sees input and output stacked."""

    def _discriminator_inputs(self) -> dict[str, int]:
        return {"b": self.architecture.in_bands + self.architecture.out_bands}

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        batch = self._augmented(batch)
        mask = self._mask(batch["mask_a"])
        real_a, real_b = _apply(batch["a"], mask), _apply(batch["b"], mask)  # (N, C, H, W)
        generator, discriminator = self.synced["g_a2b"], self.synced["d_b"]
        adversarial = self.config.lambda_gan > 0  # 0: the L1-only baseline, no D at all
        bands = self.architecture.out_bands
        with autocast(self.device, self.precision), self._decoder_levels() as levels:
            output = generator(real_a)  # (N, out_bands [+ classes], H, W)
            fake_b, logits = output[:, :bands], output[:, bands:]
            if mask is not None:
                fake_b = fake_b * mask  # nodata stays 0, as in the real chips
            judged_b = fake_b  # what the discriminator sees of the output
            if self.config.judge_classes and logits.shape[1]:
                assert self.class_colours is not None
                judged_b = expected_colours(logits, self.class_colours)
                if mask is not None:
                    judged_b = judged_b * mask

        zero = torch.zeros((), device=self.device)
        loss_d_fake = loss_d_real = loss_g_gan = loss_g_fm = zero
        if adversarial:
            # Discriminator: real pairs are real, generated pairs are fake; the loss is halved.
            _requires_grad(self.discriminators, True)
            with autocast(self.device, self.precision):
                pred_fake = discriminator(self._judged(torch.cat((real_a, judged_b.detach()), 1)))
                pred_real = discriminator(self._judged(torch.cat((real_a, real_b), 1)))
            loss_d_fake = self._gan(pred_fake, False, mask)
            loss_d_real = self._gan(pred_real, True, mask)
            loss_d = 0.5 * (loss_d_fake + loss_d_real)
            self._update(loss_d, self.optimizers["d"])

            # Generator: fool the (frozen) discriminator and stay close to the target.
            _requires_grad(self.discriminators, False)
            if self.config.lambda_fm > 0:
                pred_fake, loss_g_fm = self._feature_matching(real_a, judged_b, real_b)
            else:
                with autocast(self.device, self.precision):
                    pred_fake = self.discriminators["b"](
                        self._judged(torch.cat((real_a, judged_b), 1)))
            loss_g_gan = self._gan(pred_fake, True, mask)
        loss_g_l1 = masked_l1(fake_b, real_b, mask)
        loss_g = self.config.lambda_gan * loss_g_gan + self.config.lambda_l1 * loss_g_l1
        losses = {"d_real": loss_d_real.detach(), "d_fake": loss_d_fake.detach(),
                  "g_gan": loss_g_gan.detach(), "g_l1": loss_g_l1.detach()}
        if self.config.lambda_fm > 0:
            loss_g = loss_g + self.config.lambda_fm * loss_g_fm
            losses["g_fm"] = loss_g_fm.detach()
        if logits.shape[1]:
            loss_g_ce = hardest_cross_entropy(logits, batch["classes"], self.config.hard_pixels,
                                              self.class_weights, self.config.label_smoothing)
            loss_g = loss_g + self.config.lambda_ce * loss_g_ce
            losses["g_ce"] = loss_g_ce.detach()
            if self.config.lambda_dice > 0:
                loss_g_dice = masked_dice(logits, batch["classes"])
                loss_g = loss_g + self.config.lambda_dice * loss_g_dice
                losses["g_dice"] = loss_g_dice.detach()
            if self.config.lambda_lovasz > 0:
                # On every other row and column: a quarter of the pixels to sort.
                loss_g_lovasz = masked_lovasz(logits[..., ::2, ::2],
                                              batch["classes"][..., ::2, ::2],
                                              per_image=self.config.lovasz_per_image)
                loss_g = loss_g + self.config.lambda_lovasz * loss_g_lovasz
                losses["g_lovasz"] = loss_g_lovasz.detach()
            if self.config.lambda_cldice > 0:
                # On every other row and column too: there, streets 3 px wide, highways 6.
                loss_g_cldice = masked_cldice(logits[..., ::2, ::2],
                                              batch["classes"][..., ::2, ::2])
                loss_g = loss_g + self.config.lambda_cldice * loss_g_cldice
                losses["g_cldice"] = loss_g_cldice.detach()
            if levels:
                with autocast(self.device, self.precision):
                    level_logits = self.synced["h_a2b"](levels)
                loss_g_deep = deep_supervision_loss(
                    level_logits, batch["classes"], self.config.hard_pixels,
                    self.class_weights, self.config.label_smoothing)
                loss_g = loss_g + (self.config.lambda_ce * self.config.deep_supervision
                                   * loss_g_deep)
                losses["g_deep"] = loss_g_deep.detach()
        self._update(loss_g, *(self.optimizers[n] for n in ("g", "h") if n in self.optimizers))
        self.scaler.update()
        self._average()
        return losses

    def _feature_matching(self, real_a: Tensor, fake_b: Tensor, real_b: Tensor
                          ) -> tuple[list[Tensor], Tensor]:
        """The frozen discriminator's logits on the generated pair, per scale, and the
        feature-matching loss against the real pair. Both pairs get the same
        DiffAugment draw, so that the features differ by the output alone."""
        pairs = torch.cat((real_a, fake_b, real_b), 1)
        if self.config.diffaugment:
            pairs = augment.diff_augment(pairs, self.augment_rng)
        split = real_a.shape[1] + fake_b.shape[1]
        fake_pair = pairs[:, :split]
        real_pair = torch.cat((pairs[:, :real_a.shape[1]], pairs[:, split:]), 1)
        discriminator = self.discriminators["b"]
        assert isinstance(discriminator, PatchDiscriminator | MultiScaleDiscriminator)
        with autocast(self.device, self.precision):
            fake = _per_scale(discriminator.features(fake_pair))
            with torch.no_grad():
                real = _per_scale(discriminator.features(real_pair))
        loss = torch.stack([feature_matching(f, r) for f, r in zip(fake, real, strict=True)])
        return [f[-1] for f in fake], loss.mean()

    def validation_outputs(self, batch: Batch, paired: bool) -> tuple[Tensor, Tensor, Tensor]:
        with autocast(self.device, self.precision):
            fake_b = self.output_generators["a2b"](batch["a"])
        return fake_b[:, :self.architecture.out_bands].float(), batch["b"], batch["mask_a"]


class ImagePool:
    """The history of generated images each CycleGAN discriminator draws from
    (Shrivastava et al. 2017): once full, half the time a stored fake is returned and
    replaced by the new one. Its own seeded generator keeps resumed runs identical.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.images: list[Tensor] = []
        self.masks: list[Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        """Fakes (and their masks) for the discriminator, (N, C, H, W) and (N, 1, H, W)."""
        if self.size == 0:
            return images, masks
        out_images, out_masks = [], []
        for image, mask in zip(images.detach(), masks, strict=True):
            if len(self.images) < self.size:
                self.images.append(image.clone())
                self.masks.append(mask.clone())
                out_images.append(image)
                out_masks.append(mask)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                slot = int(torch.randint(self.size, (), generator=self.generator).item())
                out_images.append(self.images[slot])
                out_masks.append(self.masks[slot])
                self.images[slot], self.masks[slot] = image.clone(), mask.clone()
            else:
                out_images.append(image)
                out_masks.append(mask)
        return torch.stack(out_images), torch.stack(out_masks)

    def state_dict(self) -> dict[str, Any]:
        """Stored fakes and generator state."""
        return {"images": list(self.images), "masks": list(self.masks),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.images = list(state["images"])
        self.masks = list(state["masks"])
        self.generator.set_state(state["generator"])


def _load_moments(optimizer: torch.optim.Optimizer, saved: Mapping[str, Any]) -> None:
    """Load an optimiser's state (Adam's moments and step counts) and keep the settings
    this run was built with: torch's ``load_state_dict`` would also bring the saved betas,
    so a run started from another (``init_from``) would train with that run's settings
    while recording its own. A resumed run has the same settings (``check_resumable``)."""
    settings = [{k: v for k, v in group.items() if k != "params"}
                for group in optimizer.param_groups]
    optimizer.load_state_dict(dict(saved))
    for group, own in zip(optimizer.param_groups, settings, strict=True):
        group.update(own)


class CycleGANTrainer(GANTrainer):
    """Zhu et al. 2017: two generators, two least-squares PatchGANs, cycle losses λ both
    ways, identity loss 0.5·λ (when both domains have the same bands), a pool of fakes."""

    def __init__(self, architecture: Architecture, config: TrainConfig, device: torch.device,
                 precision: str, group: ProcessGroup = SINGLE,
                 class_colours: Tensor | None = None,
                 class_weights: Tensor | None = None) -> None:
        super().__init__(architecture, config, device, precision, group, class_colours,
                         class_weights)
        self.pools = {name: ImagePool(config.pool_size, config.seed + i)
                      for i, name in enumerate(("a", "b"))}
        # Networks that treat each sample on its own (instance norm, no dropout) give the
        # same result for a batch of several inputs as for each alone: such a network
        # runs once on its inputs stacked (fewer, larger kernels; the same maths).
        self.stack_generators = self.uses_identity and all(
            _per_sample(g) for g in self.generators.values())
        self.stack_discriminators = not config.diffaugment and all(
            _per_sample(d) for d in self.discriminators.values())

    @property
    def uses_identity(self) -> bool:
        """Identity loss needs G_a2b(b) to make sense: equal band counts, positive weight."""
        arch = self.architecture
        return arch.in_bands == arch.out_bands and self.config.lambda_identity > 0

    def _discriminator_inputs(self) -> dict[str, int]:
        # d_b judges images of domain B (fakes from g_a2b); d_a judges domain A.
        return {"b": self.architecture.out_bands, "a": self.architecture.in_bands}

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        config = self.config
        batch = self._augmented(batch)
        mask_a, mask_b = self._mask(batch["mask_a"]), self._mask(batch["mask_b"])
        real_a, real_b = _apply(batch["a"], mask_a), _apply(batch["b"], mask_b)  # (N, C, H, W)
        g_ab, g_ba = self.synced["g_a2b"], self.synced["g_b2a"]
        d_a, d_b = self.discriminators["a"], self.discriminators["b"]
        lambda_cycle = config.lambda_cycle

        # Generators, with both discriminators frozen.
        _requires_grad(self.discriminators, False)
        with autocast(self.device, self.precision):
            if self.stack_generators:  # each generator once on (real, identity input)
                n = real_a.shape[0]
                fake_b, idt_a = g_ab(torch.cat((real_a, real_b))).split(n)
                fake_a, idt_b = g_ba(torch.cat((real_b, real_a))).split(n)
                fake_b, fake_a = _apply(fake_b, mask_a), _apply(fake_a, mask_b)
            else:
                fake_b = _apply(g_ab(real_a), mask_a)
                fake_a = _apply(g_ba(real_b), mask_b)
                idt_a = g_ab(real_b) if self.uses_identity else None
                idt_b = g_ba(real_a) if self.uses_identity else None
            rec_a, rec_b = g_ba(fake_b), g_ab(fake_a)
            pred_fake_b, pred_fake_a = d_b(self._judged(fake_b)), d_a(self._judged(fake_a))
        losses = {
            "g_a2b": self._gan(pred_fake_b, True, mask_a),
            "g_b2a": self._gan(pred_fake_a, True, mask_b),
            "cycle_a": masked_l1(rec_a, real_a, mask_a),
            "cycle_b": masked_l1(rec_b, real_b, mask_b),
        }
        loss_g = (losses["g_a2b"] + losses["g_b2a"]
                  + lambda_cycle * (losses["cycle_a"] + losses["cycle_b"]))
        if idt_a is not None and idt_b is not None:
            losses["idt_a"] = masked_l1(idt_a, real_b, mask_b)
            losses["idt_b"] = masked_l1(idt_b, real_a, mask_a)
            loss_g = loss_g + lambda_cycle * config.lambda_identity * (
                losses["idt_a"] + losses["idt_b"])
        self._update(loss_g, self.optimizers["g"])

        # Discriminators, on real images and on fakes drawn from the pools.
        _requires_grad(self.discriminators, True)
        pool_b, pool_mask_b = self.pools["b"].query(fake_b.detach(), batch["mask_a"])
        pool_a, pool_mask_a = self.pools["a"].query(fake_a.detach(), batch["mask_b"])
        d_a, d_b = self.synced["d_a"], self.synced["d_b"]
        with autocast(self.device, self.precision):
            if self.stack_discriminators:  # each discriminator once on (real, fake)
                n = real_a.shape[0]
                pred = dict(zip(("real_b", "fake_b", "real_a", "fake_a"), (
                    *_halves(d_b(torch.cat((real_b, pool_b))), n),
                    *_halves(d_a(torch.cat((real_a, pool_a))), n)), strict=True))
            else:
                pred = {"real_b": d_b(self._judged(real_b)), "fake_b": d_b(self._judged(pool_b)),
                        "real_a": d_a(self._judged(real_a)), "fake_a": d_a(self._judged(pool_a))}
        losses["d_b"] = 0.5 * (self._gan(pred["real_b"], True, mask_b)
                               + self._gan(pred["fake_b"], False, self._mask(pool_mask_b)))
        losses["d_a"] = 0.5 * (self._gan(pred["real_a"], True, mask_a)
                               + self._gan(pred["fake_a"], False, self._mask(pool_mask_a)))
        self._update(losses["d_a"] + losses["d_b"], self.optimizers["d"])
        self.scaler.update()
        self._average()
        return {name: value.detach() for name, value in losses.items()}

    def validation_outputs(self, batch: Batch, paired: bool) -> tuple[Tensor, Tensor, Tensor]:
        """A → B against B when the validation chips are paired; else the cycle A → B → A
        against A (unpaired chips have no target to compare with)."""
        generators = self.output_generators
        with autocast(self.device, self.precision):
            fake_b = generators["a2b"](batch["a"])
            if paired:
                return fake_b.float(), batch["b"], batch["mask_a"]
            rec_a = generators["b2a"](fake_b * batch["mask_a"])
        return rec_a.float(), batch["a"], batch["mask_a"]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["pools"] = {name: pool.state_dict() for name, pool in self.pools.items()}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        for name, pool in self.pools.items():
            pool.load_state_dict(state["pools"][name])


def _per_sample(module: nn.Module) -> bool:
    """Whether ``module`` computes each sample of a batch on its own, whatever the number
    of calls: no batch norm (its statistics mix the samples), no dropout (its draws depend
    on the batch) and no parametrisation such as spectral norm (each call in training
    mode takes a power-iteration step)."""
    return not has_dropout(module) and not any(
        isinstance(m, nn.modules.batchnorm._BatchNorm)
        or nn.utils.parametrize.is_parametrized(m) for m in module.modules())


def _halves(prediction: Tensor | list[Tensor], n: int
            ) -> tuple[Tensor | list[Tensor], Tensor | list[Tensor]]:
    """A discriminator's logits on 2n stacked images as those on the first n and on the
    last n; a multi-scale discriminator's list is split scale by scale."""
    if isinstance(prediction, list):
        return [p[:n] for p in prediction], [p[n:] for p in prediction]
    return prediction[:n], prediction[n:]


def _apply(image: Tensor, mask: Tensor | None) -> Tensor:
    """Zero ``image`` where ``mask`` is 0: what nodata looks like to every network."""
    return image if mask is None else image * mask


TRAINERS: dict[str, type[GANTrainer]] = {"pix2pix": Pix2PixTrainer, "cyclegan": CycleGANTrainer}
"""Model kind → trainer class."""
