"""DiT backbone: a tiny pipeline (learned variance, id2label names) loaded through BACKBONES.build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dcbench.backbones.base import ModelNotFoundError
from dcbench.backbones.dit import DiT
from dcbench.data.labels import LabelSet, LabelSetError
from dcbench.registry import BACKBONES, SCORERS

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: threads only add overhead

E2E_N_SAMPLES, E2E_TO_KEEP = [2, 4], [2, 1]
E2E_PRUNING = {"name": "staged", "n_samples": E2E_N_SAMPLES, "to_keep": E2E_TO_KEEP}


def build(path: Path, **options: str) -> DiT:
    return BACKBONES.build({"name": "dit", "pretrained": str(path), **options})


@pytest.fixture(scope="module")
def dit(tiny_dit_dir: Path) -> DiT:
    return build(tiny_dit_dir)


def test_builds_from_the_registry_with_image_size_from_the_configs(dit, tiny_dit_dir, tiny_info):
    assert isinstance(dit, DiT)
    transformer = json.loads((tiny_dit_dir / "transformer" / "config.json").read_text())
    vae = json.loads((tiny_dit_dir / "vae" / "config.json").read_text())
    assert dit.image_size == transformer["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1)
    assert dit.image_size == tiny_info.image_size and dit.image_channels == 3
    assert not (dit.transformer.training or dit.vae.vae.training)


def test_class_names_come_from_model_index_id2label(dit, tiny_info):
    id2label = tiny_info.dit_id2label
    assert dit.classes == [id2label[str(i)] for i in range(len(id2label))]


def test_encode_images_is_the_scaled_vae_posterior_mean(dit, tiny_dit_dir, images, tiny_info):
    from diffusers import AutoencoderKL

    latents = dit.encode_images(images)
    assert latents.shape == (2, dit.transformer.config.in_channels, *(2 * [dit.transformer.config.sample_size]))
    vae = AutoencoderKL.from_pretrained(tiny_dit_dir / "vae").eval()
    with torch.no_grad():
        expected = vae.encode(images).latent_dist.mean * tiny_info.vae_scaling_factor
    torch.testing.assert_close(latents, expected)


def test_class_names_are_matched_with_synonyms_and_case(dit):
    labels = LabelSet.from_classes(["dog", "Tinca tinca", "GOLDFISH", "Carassius auratus", "man-eater"])
    assert dit.encode_conditions(labels).tolist() == [4, 0, 1, 1, 2]
    # several prompts per class: one class id per prompt
    labels = LabelSet.from_classes(["cat", "hen"], ["a {}", "the {}"])
    assert dit.encode_conditions(labels).tolist() == [3, 3, 5, 5]


def test_unknown_class_name_raises_label_set_error(dit):
    with pytest.raises(LabelSetError, match="zebra"):
        dit.encode_conditions(LabelSet.from_classes(["dog", "zebra"]))


@pytest.fixture(scope="module")
def dit_1k(tiny_info, tmp_path_factory) -> DiT:
    """A tiny DiT with ImageNet's 1,000 class embeddings and no id2label."""
    return build(tiny_info.write_dit(tmp_path_factory.mktemp("dit-1k") / "model", id2label=None, num_classes=1000))


def test_without_id2label_a_1000_class_model_gets_the_imagenet_names(dit_1k):
    assert len(dit_1k.classes) == 1000
    assert dit_1k.classes[0].startswith("tench")
    assert dit_1k.encode_conditions(LabelSet.from_classes(["goldfish", "tench"])).tolist() == [1, 0]


def test_imagenet_class_names_map_to_their_own_ids(dit_1k):
    # the `imagenet` dataset names its classes with the same timm descriptions: the identity is expected
    labels = LabelSet.from_classes(dit_1k.classes)
    assert dit_1k.encode_conditions(labels).tolist() == list(range(1000))


def test_a_class_covering_several_model_classes_gets_one_condition_per_member(dit_1k):
    # ObjectNet's "Alarm clock" is ImageNet's analog clock (409) and digital clock (530)
    labels = LabelSet.from_classes(["Alarm clock", "goldfish"], names=[["analog clock", "digital clock"], ["goldfish"]])
    assert dit_1k.encode_conditions(labels).tolist() == [409, 530, 1]


def test_without_names_dataset_class_i_is_model_class_i(tiny_info, tmp_path):
    path = tiny_info.write_dit(tmp_path / "dit-anon", id2label=None, num_classes=4)
    backbone = build(path)
    assert backbone.classes is None
    assert backbone.encode_conditions(LabelSet.from_classes(["a", "b", "c"], ["{}", "x {}"])).tolist() == [
        0, 0, 1, 1, 2, 2]
    with pytest.raises(LabelSetError, match="only 4"):
        backbone.encode_conditions(LabelSet.from_classes(list("abcde")))


def test_forward_splits_off_the_learned_variance(dit):
    x_t = torch.randn(3, 4, 8, 8)
    t = torch.tensor([0, 500, 999])
    cond = dit.encode_conditions(LabelSet.from_classes(["cat", "dog", "hen"]))
    out = dit(x_t, t, cond)
    assert out.shape == x_t.shape
    with torch.no_grad():
        raw = dit.transformer(x_t, timestep=t, class_labels=cond).sample
    assert raw.shape == (3, 8, 8, 8)  # eps and the variance
    torch.testing.assert_close(out, raw[:, :4])


def test_process_from_the_scheduler_config(dit, tiny_dit_dir):
    from diffusers import DDIMScheduler

    reference = DDIMScheduler.from_pretrained(tiny_dit_dir / "scheduler")
    assert dit.process.prediction_type == reference.config.prediction_type == "epsilon"
    torch.testing.assert_close(dit.process.alphas_cumprod, reference.alphas_cumprod.float())


def test_missing_model_directory_says_how_to_get_the_weights(tmp_path):
    missing = tmp_path / "no-such-dit"
    with pytest.raises(ModelNotFoundError, match="huggingface-cli download") as err:
        build(missing)
    assert str(missing) in str(err.value)


def test_bfloat16_loads_in_bf16_and_runs_on_cpu(tiny_dit_dir, images):
    backbone = build(tiny_dit_dir, torch_dtype="bfloat16")
    assert {p.dtype for p in backbone.parameters()} == {torch.bfloat16}
    x0 = backbone.encode_images(images)
    assert x0.dtype == torch.float32
    out = backbone(x0, torch.tensor([1, 999]), backbone.encode_conditions(LabelSet.from_classes(["cat", "dog"])))
    assert out.shape == x0.shape and out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()


def test_end_to_end_staged_diffusion_classifier(tiny_dit_dir, tiny_info, run_tiny_predict):
    from dcbench.scorers.diffusion_classifier import DiffusionClassifier

    backbone = {"name": "dit", "pretrained": str(tiny_dit_dir)}
    scorer = SCORERS.build({"name": "diffusion-classifier", "backbone": backbone, "pruning": E2E_PRUNING})
    assert isinstance(scorer, DiffusionClassifier) and isinstance(scorer.backbone, DiT)

    metrics, records = run_tiny_predict(backbone, E2E_PRUNING, tiny_info.image_size)
    n_images = len(tiny_info.classes) * tiny_info.images_per_class
    assert metrics["n_images"] == len(records) == n_images
    n_classes = len(tiny_info.classes)
    expected = tiny_info.reference_nfe(n_classes, E2E_N_SAMPLES, E2E_TO_KEEP)
    assert expected == n_classes * 2 + E2E_TO_KEEP[0] * 2
    assert [r["nfe"] for r in records] == [expected] * n_images
    assert metrics["nfe_per_image"] == expected
    for record in records:
        # one class pruned after stage 0, one after stage 1, the winner never
        assert sorted(record["pruned_at"], key=str) == [0, 1, None]
        assert record["pruned_at"][record["prediction"]] is None
        assert record["prediction"] in range(n_classes)


def test_the_variational_bound_objectives_run_on_dit(dit, images):
    from dcbench.diffusion.pruning import NoPruning
    from dcbench.diffusion.samplers import EvenSampler
    from dcbench.scorers.diffusion_classifier import DiffusionClassifier

    assert dit.learned_variance
    labels = LabelSet.from_classes(["cat", "dog", "hen"])
    errors = {}
    for loss in ("l2", "vlb", "l2+vlb"):
        scorer = DiffusionClassifier(dit, EvenSampler(), NoPruning(3), loss=loss, batch_size=64)
        scorer.prepare(labels)
        errors[loss] = torch.tensor([r["errors"] for r in scorer.score(images, ["a", "b"])])
    assert torch.isfinite(errors["vlb"]).all() and (errors["vlb"] > 0).all()  # KLs and a decoder NLL
    torch.testing.assert_close(errors["l2+vlb"], errors["l2"] + errors["vlb"], rtol=1e-5, atol=1e-6)
