"""The SD Features baseline: mid-block features of the tiny text-unet, and the scorer of a fitted head."""

from __future__ import annotations

import json

import pytest
import torch

from dcbench.backbones.base import ModelNotFoundError
from dcbench.baselines.fit import fit_baseline
from dcbench.baselines.store import BaselineNotFoundError
from dcbench.data.labels import LabelSet, LabelSetError
from dcbench.registry import BACKBONES, SCORERS
from dcbench.scorers.base import Scorer
from dcbench.scorers.sd_features import MidBlockFeatures, SDFeaturesScorer

pytestmark = pytest.mark.usefixtures("single_thread")

IDS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def backbone(tiny_text_unet_dir):
    return BACKBONES.build({"name": "text-unet", "pretrained": str(tiny_text_unet_dir)})


@pytest.fixture
def images():
    return torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_features_are_the_mid_block_output_for_the_noised_image(backbone, images):
    features = MidBlockFeatures(backbone, t=100, seed=7)(images, IDS)
    # independently: x_t from the same (seed, id) noise, a full forward pass with the empty prompt, a plain hook
    x0 = backbone.encode_images(images)
    eps = torch.stack([torch.randn(x0.shape[1:], generator=Scorer.generator(7, i)) for i in IDS])
    t = torch.full((4,), 100)
    a = backbone.process.alphas_cumprod[100]
    seen = []
    handle = backbone.unet.mid_block.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.inference_mode():
        backbone(a.sqrt() * x0 + (1 - a).sqrt() * eps, t, backbone.encode_prompts([""] * 4))
    handle.remove()
    assert features.shape == (4, seen[0][0].numel())
    torch.testing.assert_close(features, seen[0].flatten(1), atol=1e-5, rtol=1e-5)


def test_features_do_not_depend_on_the_batch(backbone, images):
    extract = MidBlockFeatures(backbone, seed=0)
    whole = extract(images, IDS)
    torch.testing.assert_close(torch.cat([extract(images[:1], IDS[:1]), extract(images[1:], IDS[1:])]), whole,
                               atol=1e-5, rtol=1e-5)
    # the noise belongs to the id: the same image under another id gets other features
    assert not torch.allclose(extract(images[:1], ["z"]), whole[:1])
    assert not torch.allclose(MidBlockFeatures(backbone, seed=1)(images, IDS), whole)


def test_pooling_keeps_a_grid(backbone, images):
    channels = backbone.unet.mid_block.resnets[0].out_channels
    assert MidBlockFeatures(backbone, pool=1)(images, IDS).shape == (4, channels)


def test_feature_options_are_checked(backbone, tiny_dit_dir):
    with pytest.raises(ValueError, match="t must be in"):
        MidBlockFeatures(backbone, t=1000)
    with pytest.raises(ValueError, match=r"no unet\.mid_block"):
        MidBlockFeatures(BACKBONES.build({"name": "dit", "pretrained": str(tiny_dit_dir)}))


# ---- the scorer of a fitted baseline --------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(tiny_text_unet_dir, tiny_imagefolder, baseline_config, tmp_path_factory):
    config = baseline_config("sd-features", {"name": "text-unet", "pretrained": str(tiny_text_unet_dir)},
                             tiny_imagefolder)
    run = tmp_path_factory.mktemp("sd-features") / "fit"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the single_thread fixture
    try:
        return run, fit_baseline(config, run)
    finally:
        torch.set_num_threads(threads)


def test_the_fit_records_what_rebuilds_the_scorer(fitted, tiny_text_unet_dir, tiny_info):
    run, record = fitted
    assert json.loads((run / "baseline.json").read_text()) == record
    assert record["kind"] == "sd-features" and record["classes"] == list(tiny_info.classes)
    assert record["backbone"]["pretrained"] == str(tiny_text_unet_dir)
    assert record["features"]["t"] == 100 and record["features"]["nfe"] == len(tiny_info.classes) * 2
    training = record["training"]
    assert training["final_step"] == training["steps"] == 4 and 0 <= training["train_accuracy"] <= 1


def test_scorer_records(fitted, tiny_info, images):
    scorer = SCORERS.build({"name": "sd-features", "checkpoint": str(fitted[0])}, seed=0)
    assert isinstance(scorer, SDFeaturesScorer) and scorer.image_size == 8
    scorer.prepare(LabelSet.from_classes(tiny_info.classes))
    records = scorer.score(images, IDS)
    assert [r["nfe"] for r in records] == [1] * 4
    for r in records:
        assert len(r["probs"]) == 3 and abs(sum(r["probs"]) - 1) < 1e-5 and r["prediction"] == max(
            range(3), key=r["probs"].__getitem__)
    # one batch or two: the same probabilities (the noise comes from the ids)
    again = scorer.score(images[:2], IDS[:2]) + scorer.score(images[2:], IDS[2:])
    for a, b in zip(records, again, strict=True):
        assert a["probs"] == pytest.approx(b["probs"], abs=1e-5)


def test_scorer_refuses_other_classes(fitted, tiny_info):
    scorer = SCORERS.build({"name": "sd-features", "checkpoint": str(fitted[0])})
    with pytest.raises(LabelSetError, match="fitted on 3 classes"):
        scorer.prepare(LabelSet.from_classes(list(reversed(tiny_info.classes))))


@pytest.mark.parametrize("damage", ["missing", "no-record", "corrupt-weights", "other-kind", "other-shape"])
def test_a_bad_checkpoint_says_how_to_fit_one(fitted, tmp_path, damage):
    import shutil

    run = tmp_path / "fit"
    if damage != "missing":
        shutil.copytree(fitted[0], run, ignore=shutil.ignore_patterns("cache", "checkpoints"))
    if damage == "no-record":
        (run / "baseline.json").unlink()
    elif damage == "corrupt-weights":
        (run / "model.safetensors").write_bytes(b"not a safetensors file")
    elif damage in ("other-kind", "other-shape"):
        record = json.loads((run / "baseline.json").read_text())
        if damage == "other-kind":
            record["kind"] = "synthetic-data"
        else:
            record["head"]["hidden"] = 16
        (run / "baseline.json").write_text(json.dumps(record))
    with pytest.raises(BaselineNotFoundError, match="dcbench fit-baseline --config CFG --run-dir") as err:
        SCORERS.build({"name": "sd-features", "checkpoint": str(run)})
    assert isinstance(err.value, ModelNotFoundError)  # the CLI prints it as a user error


def test_a_checkpoint_is_required():
    with pytest.raises(ValueError, match=r"scorer\.checkpoint"):
        SCORERS.build({"name": "sd-features"})
