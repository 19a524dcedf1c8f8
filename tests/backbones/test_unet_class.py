"""Class-conditional pixel UNet backbone: a tiny UNet2DModel with num_class_embeds, loaded through BACKBONES.build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dcbench.backbones.base import ModelNotFoundError
from dcbench.backbones.unet_class import ClassConditionalUNet
from dcbench.data.labels import LabelSet, LabelSetError
from dcbench.registry import BACKBONES

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: threads only add overhead

E2E_N_SAMPLES, E2E_TO_KEEP = [2, 4], [2, 1]


def build(path: Path, **options: str) -> ClassConditionalUNet:
    return BACKBONES.build({"name": "unet-class", "pretrained": str(path), **options})


@pytest.fixture(scope="module")
def unet(tiny_unet_class_dir: Path) -> ClassConditionalUNet:
    return build(tiny_unet_class_dir)


def test_builds_from_the_registry(unet, tiny_unet_class_dir, tiny_info):
    assert isinstance(unet, ClassConditionalUNet)
    config = json.loads((tiny_unet_class_dir / "unet" / "config.json").read_text())
    assert unet.image_size == config["sample_size"] == 8  # pixel space: no VAE
    assert unet.image_channels == config["in_channels"] == 3
    assert unet.classes == list(tiny_info.classes)  # from dcbench.json
    assert unet.process.prediction_type == "epsilon"


def test_encode_images_is_the_identity(unet):
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.equal(unet.encode_images(images), images)


def test_class_names_from_dcbench_json(unet):
    assert unet.encode_conditions(LabelSet.from_classes(["goldfish", "cat"])).tolist() == [2, 0]
    with pytest.raises(LabelSetError, match="zebra"):
        unet.encode_conditions(LabelSet.from_classes(["zebra"]))


def test_without_names_dataset_class_i_is_model_class_i(tiny_info, tmp_path):
    backbone = build(tiny_info.write_unet_class(tmp_path / "anon", classes=None))
    assert backbone.classes is None
    assert backbone.encode_conditions(LabelSet.from_classes(["x", "y"])).tolist() == [0, 1]
    with pytest.raises(LabelSetError, match="only 3"):
        backbone.encode_conditions(LabelSet.from_classes(list("abcd")))


def test_a_unet_without_class_embedding_is_refused(tiny_info, tmp_path):
    with pytest.raises(ValueError, match="not class-conditional"):
        build(tiny_info.write_unet_class(tmp_path / "uncond", classes=None, num_class_embeds=0))


def test_forward_output_has_the_shape_of_x_t(unet):
    x_t = torch.randn(3, 3, 8, 8)
    t = torch.tensor([0, 500, 999])
    cond = torch.tensor([0, 1, 2])
    out = unet(x_t, t, cond)
    assert out.shape == x_t.shape
    with torch.no_grad():
        torch.testing.assert_close(out, unet.unet(x_t, t, class_labels=cond).sample)


def test_missing_model_directory_says_how_to_get_the_weights(tmp_path):
    with pytest.raises(ModelNotFoundError, match="huggingface-cli download"):
        build(tmp_path / "missing")


def test_bfloat16_loads_in_bf16_and_runs_on_cpu(tiny_unet_class_dir):
    backbone = build(tiny_unet_class_dir, torch_dtype="bfloat16")
    assert {p.dtype for p in backbone.parameters()} == {torch.bfloat16}
    x_t = torch.randn(2, 3, 8, 8)
    out = backbone(x_t, torch.tensor([1, 999]), torch.tensor([0, 2]))
    assert out.shape == x_t.shape and out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()


def test_end_to_end_staged_diffusion_classifier(tiny_unet_class_dir, tiny_info, run_tiny_predict):
    # the 16x16 images of the folder are resized to the model's 8x8
    pruning = {"name": "staged", "n_samples": E2E_N_SAMPLES, "to_keep": E2E_TO_KEEP}
    metrics, records = run_tiny_predict({"name": "unet-class", "pretrained": str(tiny_unet_class_dir)}, pruning, 8)
    assert metrics["n_images"] == len(tiny_info.classes) * tiny_info.images_per_class
    expected = tiny_info.reference_nfe(len(tiny_info.classes), E2E_N_SAMPLES, E2E_TO_KEEP)
    assert {r["nfe"] for r in records} == {expected}
