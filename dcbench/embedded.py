"""The embedded models dcbench ships: where they live and what they are (architectures as data).

The digits model is a class-conditional pixel UNet trained by dcbench on the digits train split
(:mod:`dcbench.training`; ``dcbench train-embedded digits --out DIR``). The shipped copy lives in
``dcbench/weights/digits`` in diffusers layout (``unet/`` + ``scheduler/``) plus ``dcbench.json``
(class names, how it was trained, how it scored).

The shapes world (:mod:`dcbench.data.world`) ships two models trained on the same captioned
train split, in ``dcbench/weights/shapes-world``: a tiny CLIP (``clip/``, open_clip's own
``local-dir`` layout) and a text-conditional UNet (``unet/`` + ``scheduler/``) conditioned on the
frozen text tower of that CLIP, the way Stable Diffusion 2 conditions on OpenCLIP's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "DIGITS_SCHEDULER_CONFIG",
    "DIGITS_UNET_CONFIG",
    "WEIGHTS_DIR",
    "WORLD_CLIP_CONFIG",
    "WORLD_PATCH_SIZE",
    "WORLD_UNET_CONFIG",
    "resolve_pretrained",
]

WEIGHTS_DIR = Path(__file__).parent / "weights"
EMBEDDED_PREFIX = "embedded:"

# Architecture as data: ~1.06M parameters, 8x8 -> 4x4 -> 2x2, one ResNet block per level. No
# attention: an attention block at 4x4 made a training step ~1.5x slower on CPU (measured), and the
# model without it already meets the accuracy target.
DIGITS_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 1,
    "out_channels": 1,
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D", "UpBlock2D"],
    "norm_num_groups": 16,
    "num_class_embeds": 10,
}
DIGITS_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "prediction_type": "epsilon",
}


# The world's CLIP (open_clip model config): ~3.5M parameters, most of them the token embedding of
# open_clip's bundled 49,408-token BPE vocabulary. A 3-layer ViT on 4x4 patches of 32x32 images; a
# 3-layer text transformer over 16 tokens (the longest caption has 11 with its start/end tokens).
WORLD_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 96, "patch_size": 4, "head_width": 32, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 3, "mlp_ratio": 2.0},
}
# The world's denoiser diffuses pixels, rearranged 4x4 -> channels (space-to-depth, as DiT patchifies):
# 32x32x3 images become 8x8x48 inputs. The rearrangement is a permutation, so noise stays i.i.d. per
# pixel and the classifier's error is the pixel-space error; a UNet at 32x32 was ~8x slower per
# training step on 2 CPU cores (measured). Cross-attention to the text tokens at 4x4 and 2x2.
WORLD_PATCH_SIZE = 4
WORLD_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 48,
    "out_channels": 48,
    "block_out_channels": [64, 96, 96],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "cross_attention_dim": 64,
    "attention_head_dim": 16,
    "norm_num_groups": 16,
}
WORLD_SCHEDULER_CONFIG: dict[str, Any] = DIGITS_SCHEDULER_CONFIG


def resolve_pretrained(name_or_path: str) -> str:
    """``embedded:NAME`` (or ``embedded:NAME/PART``) -> the shipped directory; anything else unchanged."""
    if not name_or_path.startswith(EMBEDDED_PREFIX):
        return name_or_path
    name = name_or_path[len(EMBEDDED_PREFIX):]
    model = name.split("/")[0]  # "shapes-world/clip" names a part of a shipped model
    if not (WEIGHTS_DIR / model / "dcbench.json").is_file():
        shipped = sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "dcbench.json").is_file())
        raise FileNotFoundError(f"no embedded model {name!r} (shipped: {', '.join(shipped) or 'none'}). "
                                f"Retrain it into {WEIGHTS_DIR / model} with `dcbench train-embedded` "
                                "(docs/embedded.md).")
    return str(WEIGHTS_DIR / name)
