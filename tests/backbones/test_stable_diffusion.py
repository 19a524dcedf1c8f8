"""Stable Diffusion backbone: a tiny pipeline written with save_pretrained, loaded through BACKBONES.build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dcbench.backbones.base import ModelNotFoundError
from dcbench.backbones.stable_diffusion import StableDiffusion
from dcbench.data.labels import LabelSet
from dcbench.registry import BACKBONES, SCORERS

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: threads only add overhead

# stage 1 scores pool positions {1, 3} (of 4) for every candidate, stage 2 the new {0, 2} for the 2 survivors
E2E_N_SAMPLES, E2E_TO_KEEP = [2, 4], [2, 1]
E2E_PRUNING = {"name": "staged", "n_samples": E2E_N_SAMPLES, "to_keep": E2E_TO_KEEP}


def build(path: Path, **options: str) -> StableDiffusion:
    return BACKBONES.build({"name": "stable-diffusion", "pretrained": str(path), **options})


@pytest.fixture(scope="module")
def sd(tiny_sd_dir: Path) -> StableDiffusion:
    return build(tiny_sd_dir)


def test_builds_from_the_registry_with_image_size_from_the_configs(sd, tiny_sd_dir, tiny_info):
    assert isinstance(sd, StableDiffusion)
    unet = json.loads((tiny_sd_dir / "unet" / "config.json").read_text())
    vae = json.loads((tiny_sd_dir / "vae" / "config.json").read_text())
    # latent side x VAE downsampling (2 per extra block: 8 for SD's four blocks, 2 for the tiny two)
    assert sd.image_size == unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1) == tiny_info.image_size
    assert sd.image_channels == 3
    assert not any(p.requires_grad for p in sd.parameters())
    assert not (sd.unet.training or sd.vae.vae.training or sd.text_encoder.training)  # dropout off: inference


def test_encode_images_is_the_scaled_vae_posterior_mean(sd, tiny_sd_dir, images, tiny_info):
    from diffusers import AutoencoderKL

    latents = sd.encode_images(images)
    # 4 latent channels at image / 2 per side: the tiny VAE has 2 blocks (SD's 4 blocks give image / 8)
    assert latents.shape == (2, 4, 8, 8)
    assert latents.dtype == torch.float32
    vae = AutoencoderKL.from_pretrained(tiny_sd_dir / "vae").eval()
    assert vae.config.scaling_factor == tiny_info.vae_scaling_factor
    with torch.no_grad():
        expected = vae.encode(images).latent_dist.mean * vae.config.scaling_factor
    torch.testing.assert_close(latents, expected)


def test_encode_conditions_one_text_embedding_per_prompt(sd, tiny_sd_dir, tiny_info):
    from transformers import CLIPTextModel, CLIPTokenizer

    labels = LabelSet.from_classes(["cat", "dog", "goldfish"], ["a photo of a {}.", "a {}"])
    cond = sd.encode_conditions(labels)
    assert cond.shape == (6, tiny_info.text_max_length, sd.text_encoder.config.hidden_size)
    # the same as the tokenizer + text encoder called directly (padded to max length, as the SD pipeline)
    tokenizer = CLIPTokenizer.from_pretrained(tiny_sd_dir / "tokenizer")
    encoder = CLIPTextModel.from_pretrained(tiny_sd_dir / "text_encoder").eval()
    assert tokenizer.model_max_length == tiny_info.text_max_length
    ids = tokenizer(["a dog"], padding="max_length", max_length=tokenizer.model_max_length,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(cond[3:4], encoder(ids)[0])
    # prompts are encoded in chunks: the chunk size changes nothing
    sd.text_batch_size = 4
    try:
        torch.testing.assert_close(sd.encode_conditions(labels), cond)
    finally:
        sd.text_batch_size = 64
    assert not torch.equal(cond[0], cond[2])  # different prompts, different embeddings


def test_forward_output_has_the_shape_of_x_t(sd, images):
    labels = LabelSet.from_classes(["cat", "dog"], ["a photo of a {}."])
    cond = sd.encode_conditions(labels)
    x_t = torch.randn(2, *sd.encode_images(images).shape[1:])
    t = torch.tensor([10, 900])
    out = sd(x_t, t, cond)
    assert out.shape == x_t.shape
    with torch.no_grad():
        torch.testing.assert_close(out, sd.unet(x_t, t, encoder_hidden_states=cond).sample)


@pytest.mark.parametrize(("fixture", "prediction_type", "scheduler"), [
    ("tiny_sd_dir", "epsilon", "PNDMScheduler"),
    ("tiny_sd_v_dir", "v_prediction", "DDIMScheduler"),
])
def test_process_from_the_scheduler_config(fixture, prediction_type, scheduler, request):
    import diffusers

    path = request.getfixturevalue(fixture)
    backbone = build(path)
    assert backbone.process.prediction_type == prediction_type
    reference = getattr(diffusers, scheduler).from_pretrained(path / "scheduler")
    assert reference.config.prediction_type == prediction_type
    torch.testing.assert_close(backbone.process.alphas_cumprod, reference.alphas_cumprod.float())
    assert backbone.process.num_train_timesteps == 1000


def test_missing_model_directory_says_how_to_get_the_weights(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError) as err:
        build(missing)
    message = str(err.value)
    assert str(missing) in message
    assert "huggingface-cli download" in message and "diffusers layout" in message
    assert isinstance(err.value, FileNotFoundError)  # what the CLI reports as a user error


def test_missing_component_is_named(tiny_sd_dir, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_sd_dir, partial, ignore=shutil.ignore_patterns("text_encoder"))
    with pytest.raises(ModelNotFoundError, match="text_encoder"):
        build(partial)


def test_bfloat16_loads_in_bf16_and_runs_on_cpu(tiny_sd_dir, images):
    backbone = build(tiny_sd_dir, torch_dtype="bfloat16")
    assert backbone.dtype == torch.bfloat16
    assert {p.dtype for p in backbone.parameters()} == {torch.bfloat16}
    x0 = backbone.encode_images(images)
    assert x0.dtype == torch.float32  # latents come back in float32 for the float32 noising
    cond = backbone.encode_conditions(LabelSet.from_classes(["cat", "dog"]))
    out = backbone(x0, torch.tensor([1, 999]), cond)
    assert out.shape == x0.shape and out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()


def test_end_to_end_staged_diffusion_classifier(tiny_sd_dir, tiny_info, run_tiny_predict):
    from dcbench.scorers.diffusion_classifier import DiffusionClassifier

    backbone = {"name": "stable-diffusion", "pretrained": str(tiny_sd_dir)}
    scorer = SCORERS.build({"name": "diffusion-classifier", "backbone": backbone, "sampler": "even",
                            "pruning": E2E_PRUNING})
    assert isinstance(scorer, DiffusionClassifier) and isinstance(scorer.backbone, StableDiffusion)
    assert scorer.image_size == tiny_info.image_size

    templates = ["a photo of a {}.", "a {}"]  # two prompts per class: 6 candidates for 3 classes
    metrics, records = run_tiny_predict(backbone, E2E_PRUNING, tiny_info.image_size, templates)
    n_images = len(tiny_info.classes) * tiny_info.images_per_class
    assert metrics["n_images"] == len(records) == n_images
    n_candidates = len(tiny_info.classes) * len(templates)
    expected = tiny_info.reference_nfe(n_candidates, E2E_N_SAMPLES, E2E_TO_KEEP)
    assert expected == n_candidates * 2 + E2E_TO_KEEP[0] * 2
    assert [r["nfe"] for r in records] == [expected] * n_images
    assert metrics["nfe_per_image"] == expected
    assert metrics["classes"] == list(tiny_info.classes)
    for record in records:
        assert len(record["probs"]) == len(tiny_info.classes)
        assert 0 <= record["prompt"] < n_candidates  # the winning prompt, reported with prompt ensembles
