"""The text-unet backbone (the shapes world's model), loaded from a tiny directory in its shipped layout."""

from __future__ import annotations

import json

import pytest
import torch

from dcbench.data.labels import LabelSet
from dcbench.openclip import load_open_clip, text_states
from dcbench.registry import BACKBONES

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def backbone(tiny_text_unet_dir):
    return BACKBONES.build({"name": "text-unet", "pretrained": str(tiny_text_unet_dir)})


def test_patches_are_a_lossless_rearrangement(backbone):
    images = torch.rand(3, 3, 8, 8) * 2 - 1
    x0 = backbone.encode_images(images)
    assert backbone.patch_size == 2 and backbone.image_size == 8
    assert x0.shape == (3, 12, 4, 4)
    assert torch.equal(backbone.decode_latents(x0), images)
    # a permutation of pixels: i.i.d. noise stays i.i.d. and errors are pixel-space errors
    assert torch.equal(x0.flatten().sort().values, images.flatten().sort().values)


def test_conditions_are_the_text_towers_token_states(backbone, tiny_text_unet_dir):
    labels = LabelSet.from_classes(["red circle", "blue square"], ["a photo of a {}.", "a {}"])
    cond = backbone.encode_conditions(labels)
    assert cond.shape == (4, 16, 16)  # prompts x context length x text width
    clip = load_open_clip(f"local-dir:{tiny_text_unet_dir / 'clip'}")
    expected = text_states(clip, backbone.tokenizer(list(labels.prompts)))
    assert torch.allclose(cond, expected, atol=1e-6)
    assert torch.allclose(backbone.encode_prompts(["a red circle"]), expected[1:2], atol=1e-6)


def test_earlier_text_layer_changes_the_conditions(tiny_text_unet_dir):
    last = BACKBONES.build({"name": "text-unet", "pretrained": str(tiny_text_unet_dir)})
    with pytest.raises(ValueError, match="counts from the end"):
        text_states(last.clip, last.tokenizer(["x"]), layer=0)
    out = last(torch.zeros(1, 12, 4, 4), torch.tensor([10]), last.encode_prompts(["a red circle"]))
    assert out.shape == (1, 12, 4, 4)


def test_wrong_patch_size_for_the_unet_is_refused(tiny_text_unet_dir, tmp_path):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(tiny_text_unet_dir, broken)
    (broken / "dcbench.json").write_text(json.dumps({"patch_size": 4}))
    with pytest.raises(Exception, match="cannot take RGB patches of 4x4 pixels"):
        BACKBONES.build({"name": "text-unet", "pretrained": str(broken)})


def test_classification_and_matching_runs_end_to_end(tiny_text_unet_dir, tmp_path):
    from dcbench.cli import run_predict

    scorer = {"name": "diffusion-classifier", "backbone": {"name": "text-unet", "pretrained": str(tiny_text_unet_dir)},
              "pruning": {"name": "none", "n_samples": 3}, "batch_size": 64}
    common = {"seed": 0, "scorer": scorer, "trainer": {"accelerator": "cpu", "devices": 1,
                                                       "enable_progress_bar": False}, "logger": "none"}
    classify = {**common, "data": {"dataset": {"name": "shapes-world", "n": 9}, "templates": ["a photo of a {}."],
                                   "batch_size": 3}}
    metrics = run_predict(classify, tmp_path / "classify")
    assert metrics["n_images"] == 9 and metrics["nfe_per_image"] == 60 * 3
    assert "top1_held_out" in metrics and "top1_seen" in metrics
    match = {**common, "task": "matching", "data": {"dataset": {"name": "shapes-world-pairs"}, "limit": 3,
                                                    "batch_size": 2}}
    metrics = run_predict(match, tmp_path / "match")
    assert metrics["n_pairs"] == 3 and metrics["nfe_per_pair"] == 2 * 2 * 3
    records = [json.loads(line) for line in (tmp_path / "match" / "records.jsonl").read_text().splitlines()]
    assert [len(r["scores"]) for r in records] == [2, 2, 2] and {r["tag"] for r in records} <= {
        "attribute", "relation", "object"}
    assert run_predict(match, tmp_path / "match") == metrics  # resumed: nothing left, same metrics
