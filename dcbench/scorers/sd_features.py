"""SD Features (Li et al. 2023, Table 1): a classifier trained on the denoiser's features. Not zero-shot.

An image is encoded to x0, noised to timestep t (100 by default) with noise drawn from (seed, image id),
and passed through the denoiser with the null condition (the empty prompt); the output of
``unet.mid_block`` is its feature map. The head (a LayerNorm and a timm ``Mlp``) is trained on the
flattened map by ``dcbench fit-baseline`` on a labelled train split. The map is flattened, or
average-pooled to a small grid, never to one vector: where things are in the image stays in the
features (the shapes world's classes include the position).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dcbench.backbones.base import Backbone
from dcbench.baselines.store import load_baseline
from dcbench.registry import BACKBONES, SCORERS
from dcbench.scorers.base import Scorer
from dcbench.scorers.fitted import FittedScorer

__all__ = ["MidBlockFeatures", "SDFeaturesScorer", "feature_head"]

KIND = "sd-features"


class _Stop(Exception):
    """Raised by the hook once the mid-block has run: the decoder half of the UNet is not needed."""


class MidBlockFeatures(nn.Module):
    """(images, ids) -> flattened ``backbone.unet.mid_block`` outputs for x_t at timestep ``t``, null condition.

    Args:
        backbone: a diffusion backbone with a ``unet`` that has a ``mid_block`` and a null condition.
        t: the timestep the images are noised to.
        seed: with each image id, fixes that image's noise (so features do not depend on the batch).
        pool: average-pool the map to ``pool x pool`` cells first (None: keep it whole).
    """

    def __init__(self, backbone: Backbone, t: int = 100, seed: int = 0, pool: int | None = None) -> None:
        super().__init__()
        if getattr(getattr(backbone, "unet", None), "mid_block", None) is None:
            raise ValueError(f"{type(backbone).__name__} has no unet.mid_block to take features from "
                             "(sd-features needs a UNet backbone: stable-diffusion, text-unet, unet-class)")
        if not 0 <= t < backbone.process.num_train_timesteps:
            raise ValueError(f"t must be in [0, {backbone.process.num_train_timesteps}), got {t}")
        if pool is not None and pool < 1:
            raise ValueError(f"pool must be >= 1 or None, got {pool}")
        self.backbone, self.t, self.seed, self.pool = backbone, t, seed, pool
        self.register_buffer("null", torch.empty(0), persistent=False)

    def forward(self, images: Tensor, ids: Sequence[str]) -> Tensor:
        """(B, D) float32 features of images in [-1, 1] (on the backbone's device) with their ids."""
        if not self.null.numel():  # once, on the device the module lives on by then
            self.null = self.backbone.null_condition()
        x0 = self.backbone.encode_images(images).float()
        eps = torch.stack([torch.randn(x0.shape[1:], generator=Scorer.generator(self.seed, i)) for i in ids])
        t = torch.full((len(ids),), self.t, dtype=torch.long, device=x0.device)
        x_t = self.backbone.process.add_noise(x0, eps.to(x0.device), t)
        captured: list[Tensor] = []

        def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
            captured.append(output)
            raise _Stop

        handle = self.backbone.unet.mid_block.register_forward_hook(hook)
        try:
            self.backbone(x_t, t, self.null.expand(len(ids), *self.null.shape[1:]))
        except _Stop:
            pass
        finally:
            handle.remove()
        features = captured[0].float()
        if self.pool is not None:
            features = F.adaptive_avg_pool2d(features, self.pool)
        return features.flatten(1)


def feature_head(in_features: int, num_classes: int, hidden: int = 256, drop: float = 0.0) -> nn.Module:
    """LayerNorm, then a timm ``Mlp`` (or a linear layer if ``hidden`` is 0).

    The LayerNorm puts every backbone's features on one scale: mid-block activations range over orders
    of magnitude between models, which would otherwise make the learning rate model-specific.
    """
    from timm.layers import Mlp

    body = Mlp(in_features, hidden, num_classes, drop=drop) if hidden else nn.Linear(in_features, num_classes)
    return nn.Sequential(nn.LayerNorm(in_features), body)


class SDFeaturesScorer(FittedScorer):
    """The SD Features baseline: a fitted head on :class:`MidBlockFeatures` (one denoiser call per image)."""

    nfe = 1

    def __init__(self, features: MidBlockFeatures, head: nn.Module, classes: Sequence[str], dim: int,
                 batch_size: int = 64) -> None:
        super().__init__(classes, batch_size)
        self.features, self.head, self.dim = features, head, dim
        self.image_size = features.backbone.image_size
        self.image_channels = features.backbone.image_channels

    def logits(self, images: Tensor, ids: list[str]) -> Tensor:
        features = self.features(images, ids)
        if features.shape[1] != self.dim:
            raise ValueError(f"the backbone gives {features.shape[1]} features per image, but the head was fitted on "
                             f"{self.dim}: score with the backbone the baseline was fitted with")
        return self.head(features)


@SCORERS.register(KIND)
def sd_features(checkpoint: str | None = None, backbone: str | Mapping[str, Any] | None = None,
                batch_size: int = 64, seed: int = 0, fit: Mapping[str, Any] | None = None) -> SDFeaturesScorer:
    """SD Features baseline (not zero-shot): a head on the denoiser's mid-block features (`dcbench fit-baseline`).

    ``checkpoint`` is the directory ``dcbench fit-baseline`` wrote (or ``embedded:NAME/PART``); the
    backbone, timestep, pooling and head come from it; ``backbone`` replaces the recorded backbone spec (for
    a model that has moved). ``fit`` holds the options of ``dcbench fit-baseline``; scoring ignores it.
    """
    if checkpoint is None:
        raise ValueError("give scorer.checkpoint: the directory `dcbench fit-baseline` wrote")
    fitted = load_baseline(checkpoint, KIND)
    record = fitted.record
    features = MidBlockFeatures(BACKBONES.build(backbone or record["backbone"]), t=record["features"]["t"],
                                seed=seed, pool=record["features"]["pool"])
    head = fitted.load_into(feature_head(record["features"]["dim"], len(record["classes"]), **record["head"]))
    return SDFeaturesScorer(features, head, record["classes"], record["features"]["dim"], batch_size)
