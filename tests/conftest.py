"""Shared fixtures: tiny randomly initialised diffusers models in pipeline layout, and a tiny image folder.

Every model is built from a config with a fixed seed, written with ``save_pretrained`` and later loaded
back through dcbench's real loading code (``BACKBONES.build({"name": ..., "pretrained": str(dir)})``),
so nothing is ever downloaded (the suite passes with ``HF_HUB_OFFLINE=1``). The models are a few
thousand parameters each: their outputs are noise, only shapes, dtypes and wiring are meaningful.

Layouts, as on the Hub:

* Stable Diffusion: ``unet/ vae/ text_encoder/ tokenizer/ scheduler/ model_index.json``
* DiT: ``transformer/ vae/ scheduler/ model_index.json`` (with ``id2label``, as facebook/DiT-XL-2-256)
* class-conditional UNet: ``unet/ scheduler/ dcbench.json`` (class names, as the embedded digits model)
* text-conditional pixel UNet: ``unet/ scheduler/ clip/ dcbench.json`` (as the embedded shapes-world model)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

TOKENIZER_FIXTURE = Path(__file__).parent / "fixtures" / "tiny_clip_tokenizer"

#: pixels per side of every tiny latent model's input: latents are 8x8 and the tiny VAE downsamples by 2
TINY_IMAGE_SIZE = 16
#: classes of the tiny image folder (all of them are among the tiny DiT's id2label names)
TINY_CLASSES = ("cat", "dog", "goldfish")
IMAGES_PER_CLASS = 2
#: not SD's 0.18215, so that a hard-coded factor would show in the tests
VAE_SCALING_FACTOR = 0.3
TEXT_MAX_LENGTH = 77  # the tokenizer's model_max_length, as in CLIP
#: the tiny DiT's class names, in the format of facebook/DiT-XL-2-256's model_index.json
DIT_ID2LABEL = {
    "0": "tench, Tinca tinca",
    "1": "goldfish, Carassius auratus",
    "2": "great white shark, white shark, man-eater, man-eating shark, Carcharodon carcharias",
    "3": "cat",
    "4": "dog",
    "5": "hen",
    "6": "ostrich, Struthio camelus",
    "7": "brambling, Fringilla montifringilla",
    "8": "goldfinch, Carduelis carduelis",
    "9": "house finch, linnet, Carpodacus mexicanus",
}
# Stable Diffusion 2 (base) scheduler settings; the v variant is DDIM as in stabilityai/stable-diffusion-2.
SD_SCHEDULER = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                "beta_end": 0.012}
DIT_SCHEDULER = {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02}


def _tiny_vae() -> torch.nn.Module:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=[4, 8], layers_per_block=1,
                         down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                         latent_channels=4, norm_num_groups=2, sample_size=TINY_IMAGE_SIZE,
                         scaling_factor=VAE_SCALING_FACTOR)


def _write_model_index(root: Path, pipeline: str, components: dict[str, tuple[str, str]], **extra: object) -> None:
    index = {"_class_name": pipeline, **{k: list(v) for k, v in components.items()}, **extra}
    (root / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def write_tiny_stable_diffusion(root: Path, prediction_type: str = "epsilon") -> Path:
    """A tiny SD 2.x pipeline directory: 8x8x4 latents for 16x16 images, 8-dim CLIP text embeddings."""
    from diffusers import DDIMScheduler, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=TINY_IMAGE_SIZE // 2, in_channels=4,
        out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=8, attention_head_dim=2,
        norm_num_groups=2,
    ).save_pretrained(root / "unet")
    _tiny_vae().save_pretrained(root / "vae")
    # transformers >= 5 takes vocab/merges paths (its vocab_file= is silently ignored); from_pretrained on the
    # folder of vocab.json + merges.txt works in every version.
    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER_FIXTURE, model_max_length=TEXT_MAX_LENGTH)
    tokenizer.save_pretrained(root / "tokenizer")
    torch.manual_seed(0)
    CLIPTextModel(CLIPTextConfig(
        hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16, projection_dim=8,
        vocab_size=len(tokenizer), max_position_embeddings=TEXT_MAX_LENGTH, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )).save_pretrained(root / "text_encoder")
    if prediction_type == "epsilon":  # stabilityai/stable-diffusion-2-base ships a PNDM config
        scheduler = PNDMScheduler(**SD_SCHEDULER, skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    else:
        scheduler = DDIMScheduler(**SD_SCHEDULER, prediction_type=prediction_type, clip_sample=False,
                                  set_alpha_to_one=False, steps_offset=1)
    scheduler.save_pretrained(root / "scheduler")
    _write_model_index(root, "StableDiffusionPipeline", {
        "unet": ("diffusers", "UNet2DConditionModel"), "vae": ("diffusers", "AutoencoderKL"),
        "text_encoder": ("transformers", "CLIPTextModel"), "tokenizer": ("transformers", "CLIPTokenizer"),
        "scheduler": ("diffusers", type(scheduler).__name__),
    })
    return root


def write_tiny_dit(root: Path, id2label: dict[str, str] | None = DIT_ID2LABEL, num_classes: int | None = None) -> Path:
    """A tiny DiT pipeline directory: 2C output channels (learned variance), named classes.

    ``id2label=None`` leaves the names out of ``model_index.json``; ``num_classes`` defaults to ``len(id2label)``.
    """
    from diffusers import DDIMScheduler, DiTTransformer2DModel

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    DiTTransformer2DModel(
        in_channels=4, out_channels=8, sample_size=TINY_IMAGE_SIZE // 2, patch_size=2, num_layers=1,
        attention_head_dim=8, num_attention_heads=2,
        num_embeds_ada_norm=num_classes or len(id2label or DIT_ID2LABEL),
    ).save_pretrained(root / "transformer")
    _tiny_vae().save_pretrained(root / "vae")
    DDIMScheduler(**DIT_SCHEDULER, clip_sample=False).save_pretrained(root / "scheduler")
    _write_model_index(root, "DiTPipeline", {
        "transformer": ("diffusers", "DiTTransformer2DModel"), "vae": ("diffusers", "AutoencoderKL"),
        "scheduler": ("diffusers", "DDIMScheduler"),
    }, **({"id2label": id2label} if id2label is not None else {}))
    return root


def write_tiny_unet_class(root: Path, classes: Sequence[str] | None = TINY_CLASSES,
                          num_class_embeds: int | None = len(TINY_CLASSES), learned_variance: bool = False) -> Path:
    """A tiny pixel UNet2DModel (8x8 RGB), class names in dcbench.json unless None (no class embedding if 0).

    ``learned_variance``: 6 output channels, eps and the learned-range variance values.
    """
    from diffusers import DDPMScheduler, UNet2DModel

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    UNet2DModel(
        sample_size=8, in_channels=3, out_channels=6 if learned_variance else 3, block_out_channels=(4, 8),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=2, num_class_embeds=num_class_embeds or None,
    ).save_pretrained(root / "unet")
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear").save_pretrained(root / "scheduler")
    if classes is not None:
        (root / "dcbench.json").write_text(json.dumps({"classes": list(classes)}) + "\n")
    return root


#: the tiny text-unet: 2x2 patches of 8x8 RGB images (4x4x12 UNet inputs), a 16-wide open_clip text tower
TEXT_UNET_PATCH = 2
TEXT_UNET_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 8, "layers": 1, "width": 16, "patch_size": 4, "head_width": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


def write_tiny_text_unet(root: Path) -> Path:
    """A tiny text-unet directory (the shapes-world layout): UNet2DConditionModel on a tiny open_clip text tower."""
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from dcbench.openclip import create_from_config
    from dcbench.training.world import save_open_clip

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    clip, _ = create_from_config(TEXT_UNET_CLIP)
    save_open_clip(clip, TEXT_UNET_CLIP, root / "clip")
    channels = 3 * TEXT_UNET_PATCH**2
    UNet2DConditionModel(
        sample_size=4, in_channels=channels, out_channels=channels, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_UNET_CLIP["text_cfg"]["width"], attention_head_dim=4, norm_num_groups=4,
    ).save_pretrained(root / "unet")
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear").save_pretrained(root / "scheduler")
    (root / "dcbench.json").write_text(json.dumps({"patch_size": TEXT_UNET_PATCH}) + "\n")
    return root


def reference_nfe(n_candidates: int, n_samples: Sequence[int], to_keep: Sequence[int], n_trials: int = 1) -> int:
    """Denoiser evaluations per image of the reference ``eval_prob_adaptive``, written out independently.

    ``t_to_eval`` holds ``max(n_samples)`` timesteps; stage k scores every remaining candidate at the
    timesteps ``t_to_eval[len // n // 2 :: len // n][:n]`` it has not seen yet (n_trials noises each),
    then keeps ``to_keep[k]`` candidates.
    """
    pool = list(range(max(n_samples)))
    seen: set[int] = set()
    remaining, nfe = n_candidates, 0
    for n, keep in zip(n_samples, to_keep, strict=True):
        stride = len(pool) // n
        new = [t for t in pool[stride // 2 :: stride][:n] if t not in seen]
        seen.update(new)
        nfe += remaining * len(new) * n_trials
        remaining = min(keep, remaining)
    return nfe


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny Stable Diffusion (epsilon prediction, PNDM scheduler config)."""
    return write_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd") / "model")


@pytest.fixture(scope="session")
def tiny_sd_v_dir(tiny_sd_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny Stable Diffusion with a v_prediction (DDIM) scheduler config."""
    from diffusers import DDIMScheduler

    root = tmp_path_factory.mktemp("tiny-sd-v") / "model"
    shutil.copytree(tiny_sd_dir, root, ignore=shutil.ignore_patterns("scheduler"))
    DDIMScheduler(**SD_SCHEDULER, prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False,
                  steps_offset=1).save_pretrained(root / "scheduler")
    return root


@pytest.fixture(scope="session")
def tiny_dit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny DiT with learned variance and ``id2label`` class names."""
    return write_tiny_dit(tmp_path_factory.mktemp("tiny-dit") / "model")


@pytest.fixture(scope="session")
def tiny_unet_class_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny class-conditional pixel UNet with class names in ``dcbench.json``."""
    return write_tiny_unet_class(tmp_path_factory.mktemp("tiny-unet-class") / "model")


@pytest.fixture(scope="session")
def tiny_text_unet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny text-conditional pixel UNet on a tiny open_clip text tower (8x8 images in 2x2 patches)."""
    return write_tiny_text_unet(tmp_path_factory.mktemp("tiny-text-unet") / "model")


@pytest.fixture(scope="session")
def tiny_imagefolder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ROOT/<class>/<i>.png``: TINY_CLASSES x IMAGES_PER_CLASS random RGB images of TINY_IMAGE_SIZE pixels."""
    root = tmp_path_factory.mktemp("tiny-imagefolder")
    rng = np.random.default_rng(0)
    for name in TINY_CLASSES:
        (root / name).mkdir()
        for i in range(IMAGES_PER_CLASS):
            pixels = rng.integers(0, 256, (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def tiny_models(tiny_sd_dir: Path, tiny_dit_dir: Path, tiny_unet_class_dir: Path) -> dict[str, Path]:
    """Backbone registry name -> its tiny model directory."""
    return {"stable-diffusion": tiny_sd_dir, "dit": tiny_dit_dir, "unet-class": tiny_unet_class_dir}


@pytest.fixture(scope="session")
def tiny_info() -> SimpleNamespace:
    """The constants and writers of the tiny fixtures (test modules do not import conftest)."""
    return SimpleNamespace(image_size=TINY_IMAGE_SIZE, classes=TINY_CLASSES, images_per_class=IMAGES_PER_CLASS,
                           text_max_length=TEXT_MAX_LENGTH, dit_id2label=DIT_ID2LABEL,
                           vae_scaling_factor=VAE_SCALING_FACTOR, write_stable_diffusion=write_tiny_stable_diffusion,
                           write_dit=write_tiny_dit, write_unet_class=write_tiny_unet_class,
                           reference_nfe=reference_nfe)


def tiny_baseline_config(kind: str, backbone: dict, folder: Path, **fit: object) -> dict:
    """A ``dcbench fit-baseline`` config on a tiny backbone: ``folder`` (an image folder) is both the labelled
    train split and the task; a few images, denoiser steps and training steps; CPU, no progress bars."""
    dataset = {"name": "imagefolder", "root": str(folder)}
    options = {
        "sd-features": {"dataset": dataset, "head": {"hidden": 8}, "batch_size": 4},
        "synthetic-data": {"images_per_class": 2, "num_inference_steps": 2, "batch_size": 4,
                           "model": {"name": "resnet10t", "channels": [8, 8, 8, 8], "stem_width": 8}},
    }[kind]
    train = {"steps": 4, "batch_size": 4, "warmup_steps": 1, "checkpoint_every": 2}
    return {"seed": 0, "task": "classification",
            "scorer": {"name": kind, "fit": {"backbone": backbone, **options, "train": train, **fit}},
            "data": {"dataset": dataset, "templates": ["a photo of a {}."], "batch_size": 4},
            "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False}, "logger": "none"}


@pytest.fixture(scope="session")
def baseline_config() -> Callable[..., dict]:
    """:func:`tiny_baseline_config` (test modules do not import conftest)."""
    return tiny_baseline_config


@pytest.fixture
def single_thread() -> Iterator[None]:
    """One intra-op thread for the duration of a test, then the previous setting.

    The tiny models' ops are microscopic, so threads only add overhead; and on a busy 2-core machine
    a second OpenMP thread that has to wait for a core made a tiny UNet forward ~100x slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
