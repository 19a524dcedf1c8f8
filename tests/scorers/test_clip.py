"""The zero-shot CLIP scorer, on a tiny random open_clip model loaded back through the registry.

The model is built from a model-config JSON written here (so no architecture is downloaded), saved as
safetensors and loaded back with ``SCORERS.build({"name": "clip", ...})``: the real loading code.
Its outputs are noise; the tests check wiring and agreement with independent computations.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dcbench.backbones.base import ModelNotFoundError
from dcbench.data.labels import LabelSet
from dcbench.registry import SCORERS
from dcbench.scorers.clip import CLIPScorer

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: threads only add overhead

TINY_NAME = "dcbench-test-tiny-clip"  # the architecture name is the config file's stem
TINY_SIZE = 32
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": TINY_SIZE, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
CLASSES = ("cat", "dog", "goldfish")
TEMPLATES = ("a photo of a {}.", "a drawing of a {}.")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A tiny random CLIP: its config JSON, its safetensors checkpoint and the saved state dict."""
    import open_clip
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("tiny-clip")
    config = root / f"{TINY_NAME}.json"
    config.write_text(json.dumps(TINY_CONFIG, indent=2) + "\n")
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_NAME)
    with torch.no_grad():  # not the default, so that a model whose scale was not loaded would show
        model.logit_scale.fill_(2.5)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    weights = root / "model.safetensors"
    save_file(state, weights)
    return SimpleNamespace(config=config, weights=weights, state=state)


def build(tiny_clip: SimpleNamespace, **options) -> CLIPScorer:
    spec = {"name": "clip", "model": TINY_NAME, "model_config": str(tiny_clip.config),
            "pretrained": str(tiny_clip.weights), **options}
    return SCORERS.build(spec)


@pytest.fixture
def scorer(tiny_clip: SimpleNamespace) -> CLIPScorer:
    return build(tiny_clip)


@pytest.fixture
def labels() -> LabelSet:
    return LabelSet.from_classes(CLASSES, TEMPLATES)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(4, 3, TINY_SIZE, TINY_SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_checkpoint_is_loaded_through_the_registry(scorer, tiny_clip):
    loaded = scorer.clip.state_dict()
    assert set(loaded) == set(tiny_clip.state)
    assert all(torch.equal(loaded[k], v) for k, v in tiny_clip.state.items())
    assert (scorer.image_size, scorer.image_channels) == (TINY_SIZE, 3)
    assert scorer.scale == pytest.approx(np.exp(2.5), rel=1e-6)
    assert not any(p.requires_grad for p in scorer.clip.parameters())


def test_torch_checkpoint_loads_like_safetensors(tiny_clip, tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in tiny_clip.state.items()}}, path)  # a DDP training save
    scorer = build(tiny_clip, pretrained=str(path))
    assert all(torch.equal(scorer.clip.state_dict()[k], v) for k, v in tiny_clip.state.items())


def test_records_hold_probs_in_class_order(scorer, labels, images):
    scorer.prepare(labels)
    records = scorer.score(images, [f"img{i}" for i in range(4)])
    assert len(records) == 4
    for r in records:
        probs, logits = torch.tensor(r["probs"]), torch.tensor(r["logits"])
        assert probs.shape == (len(CLASSES),) and r["nfe"] == 0
        assert float(probs.sum()) == pytest.approx(1.0, abs=1e-6)
        assert r["prediction"] == int(probs.argmax()) == int(logits.argmax())
        assert torch.allclose(probs, torch.softmax(logits, dim=0), atol=1e-6)
    # The same classes listed in reverse give the same numbers in reverse order.
    reverse = LabelSet.from_classes(CLASSES[::-1], TEMPLATES)
    scorer.prepare(reverse)
    for r, back in zip(records, scorer.score(images, [f"img{i}" for i in range(4)]), strict=True):
        assert torch.allclose(torch.tensor(back["probs"]), torch.tensor(r["probs"][::-1]), atol=1e-6)
        assert back["prediction"] == len(CLASSES) - 1 - r["prediction"]


def test_class_embeddings_are_computed_once_per_label_set(scorer, labels, images, monkeypatch):
    calls = []
    encode_text = scorer.clip.encode_text
    monkeypatch.setattr(scorer.clip, "encode_text", lambda tokens: calls.append(len(tokens)) or encode_text(tokens))
    scorer.batch_size = 4  # 6 prompts: two text batches
    scorer.prepare(labels)
    assert calls == [4, 2]
    scorer.score(images, ["a", "b", "c", "d"])
    scorer.score(images[:1], ["a"])
    scorer.prepare(LabelSet.from_classes(CLASSES, TEMPLATES))  # an equal label set (a second predict run)
    assert calls == [4, 2]
    scorer.prepare(LabelSet.from_classes(CLASSES))  # another one
    assert calls == [4, 2, 3]


def test_prompt_ensemble_averages_normalised_prompt_embeddings(scorer, labels):
    scorer.batch_size = 4  # batches that cut across classes
    scorer.prepare(labels)
    expected = []
    with torch.no_grad():
        for k in range(len(CLASSES)):
            prompts = [p for p, c in zip(labels.prompts, labels.prompt_class, strict=True) if c == k]
            each = [F.normalize(scorer.clip.encode_text(scorer.tokenizer([p])), dim=-1)[0] for p in prompts]
            expected.append(F.normalize(torch.stack(each).mean(0), dim=0))
    got = scorer.class_embeddings
    assert got.shape == (len(CLASSES), TINY_CONFIG["embed_dim"])
    assert torch.allclose(got, torch.stack(expected), atol=1e-5)
    # a real ensemble: not the embedding of any single prompt
    single = scorer.encode_texts(labels.prompts[::2])
    assert not torch.allclose(got, single, atol=1e-3)


def test_temperature_replaces_the_learned_scale(tiny_clip, labels, images):
    learned, tempered = build(tiny_clip), build(tiny_clip, temperature=0.5)
    learned.prepare(labels)
    tempered.prepare(labels)
    ids = ["a", "b", "c", "d"]
    for a, b in zip(learned.score(images, ids), tempered.score(images, ids), strict=True):
        cosine = torch.tensor(a["logits"]) / np.exp(2.5)
        assert torch.allclose(torch.tensor(b["logits"]), cosine / 0.5, atol=1e-5)
        assert torch.allclose(torch.tensor(b["probs"]), torch.softmax(cosine / 0.5, dim=0), atol=1e-6)
        assert a["prediction"] == b["prediction"]
    with pytest.raises(ValueError, match="temperature"):
        build(tiny_clip, temperature=0.0)


def test_text_image_scores_are_the_cosines_behind_score(scorer, images):
    texts = ["a cat", "a dog on a sofa", "a goldfish", "a photo of a cat.", "a red car"]
    scores, nfe = scorer.text_image_scores(images, texts, key="pair-0")
    assert scores.shape == (4, len(texts)) and nfe == 0
    assert float(scores.abs().max()) <= 1 + 1e-5
    # one prompt per class: score()'s logits are the learned scale times these cosines
    labels = LabelSet(tuple(texts), tuple(texts), tuple(range(len(texts))))
    scorer.prepare(labels)
    logits = torch.tensor([r["logits"] for r in scorer.score(images, ["a", "b", "c", "d"])])
    assert torch.allclose(logits, scorer.scale * scores, atol=1e-4)


def test_planted_image_embedding_is_predicted(scorer, labels, images, monkeypatch):
    """An image whose embedding is (a multiple of) class k's embedding gets class k, at cosine 1."""
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    scorer.prepare(labels)
    targets = [2, 0, 1, 2]
    seen = []

    def encode_image(pixels: torch.Tensor) -> torch.Tensor:
        seen.append(pixels)
        return 3.0 * scorer.class_embeddings[torch.tensor(targets)]  # unnormalised, as a real model's output

    monkeypatch.setattr(scorer.clip, "encode_image", encode_image)
    records = scorer.score(images, ["a", "b", "c", "d"])
    assert [r["prediction"] for r in records] == targets
    for k, r in zip(targets, records, strict=True):
        assert r["logits"][k] == pytest.approx(scorer.scale, rel=1e-5)
    # the model saw [-1, 1] images as [0, 1] pixels normalised with CLIP's mean and std
    mean, std = torch.tensor(OPENAI_DATASET_MEAN).view(3, 1, 1), torch.tensor(OPENAI_DATASET_STD).view(3, 1, 1)
    assert torch.allclose(seen[0], ((images + 1) / 2 - mean) / std, atol=1e-6)


def test_score_before_prepare_is_an_error(scorer, images):
    with pytest.raises(RuntimeError, match="prepare"):
        scorer.score(images, ["a", "b", "c", "d"])


def test_missing_or_mismatched_weights_say_how_to_get_them(tiny_clip, tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        build(tiny_clip, pretrained=str(tmp_path / "absent.safetensors"))
    with pytest.raises(ModelNotFoundError, match="neither a pretrained tag"):
        build(tiny_clip, pretrained="openai")  # the tiny architecture has no tags
    from safetensors.torch import save_file

    partial = tmp_path / "partial.safetensors"
    save_file({k: v for k, v in tiny_clip.state.items() if k != "logit_scale"}, partial)
    with pytest.raises(ModelNotFoundError, match="logit_scale"):
        build(tiny_clip, pretrained=str(partial))
    with pytest.raises(ModelNotFoundError, match="no architecture"):
        SCORERS.build({"name": "clip", "model": "no-such-architecture", "pretrained": None})


def test_hub_tag_offline_is_a_model_not_found_error(monkeypatch):
    import open_clip

    def offline(*args, **kwargs):
        raise RuntimeError("Failed to download weights for tag 'openai': offline")

    monkeypatch.setattr(open_clip, "create_model", offline)  # never reach the network, even with one
    with pytest.raises(ModelNotFoundError, match=r"huggingface-cli download timm/resnet50_clip\.openai"):
        SCORERS.build({"name": "clip", "model": "RN50", "pretrained": "openai"})


def test_model_config_must_be_named_after_the_model(tiny_clip):
    with pytest.raises(ValueError, match=f"model: {TINY_NAME}"):
        SCORERS.build({"name": "clip", "model": "RN50", "model_config": str(tiny_clip.config)})


@pytest.mark.parametrize("precision", ["fp16", "bf16", "pure_fp16", "pure_bf16"])
def test_lower_precision_agrees_with_fp32(tiny_clip, labels, images, precision):
    dtype = torch.float16 if "fp16" in precision else torch.bfloat16
    reference, scorer = build(tiny_clip), build(tiny_clip, precision=precision)
    dtypes = {p.dtype for p in scorer.clip.parameters()}
    if precision.startswith("pure"):
        assert dtypes == {dtype}
    else:  # open_clip's mixed precision: weights of linear and conv layers low, norms float32
        assert dtypes == {dtype, torch.float32}
    ids = ["a", "b", "c", "d"]
    for s in (reference, scorer):
        s.prepare(labels)
    for a, b in zip(reference.score(images, ids), scorer.score(images, ids), strict=True):
        assert sum(b["probs"]) == pytest.approx(1.0, abs=1e-5)
        assert np.allclose(a["probs"], b["probs"], atol=0.02)
    with pytest.raises(ValueError, match="precision"):
        build(tiny_clip, precision="fp8")


def test_registered_with_a_description():
    assert "clip" in SCORERS.names()
    assert SCORERS.get("clip").__doc__.startswith("Zero-shot CLIP")


def test_predict_end_to_end(tiny_clip, tmp_path):
    from dcbench.cli import run_predict

    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(2):  # not the model's size: the datamodule resizes and crops to scorer.image_size
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    config = {
        "seed": 0,
        "scorer": {"name": "clip", "model": TINY_NAME, "model_config": str(tiny_clip.config),
                   "pretrained": str(tiny_clip.weights)},
        "data": {"dataset": {"name": "imagefolder", "root": str(root)}, "batch_size": 2,
                 "templates": list(TEMPLATES)},
        "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False},
        "logger": "none",
    }
    run_dir = tmp_path / "run"
    metrics = run_predict(config, run_dir)
    written = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n_images"] == written["n_images"] == 4
    assert written["nfe_per_image"] == 0
    assert written["classes"] == ["cat", "dog"]
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert sorted(r["label"] for r in records) == [0, 0, 1, 1]
    for r in records:
        assert len(r["probs"]) == len(r["logits"]) == 2 and r["prediction"] == int(np.argmax(r["probs"]))
