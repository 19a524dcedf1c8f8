"""Zero-shot CLIP (Radford et al. 2021) through open_clip: the contrastive baseline to Diffusion Classifier.

Each class is one text embedding: the normalised embeddings of its prompts are averaged and
re-normalised (CLIP's prompt ensembling), once per label set. An image is scored by the cosine
similarity of its embedding to every class embedding, times CLIP's learned logit scale; no denoiser
is evaluated (``nfe`` is 0).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dcbench.backbones.base import ModelNotFoundError
from dcbench.checkpoints import load_tensors
from dcbench.config import ConfigError
from dcbench.data.labels import LabelSet
from dcbench.registry import SCORERS
from dcbench.scorers.base import Scorer

__all__ = ["CLIPScorer", "load_open_clip", "read_state_dict"]

#: open_clip precisions: ``fp16``/``bf16`` keep norms in float32 as OpenAI did, ``pure_*`` cast everything
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
              "pure_fp16": torch.float16, "pure_bf16": torch.bfloat16}
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


# ---- loading ---------------------------------------------------------------------------------------
def _register_config(model: str, model_config: str) -> None:
    """Make ``model_config`` (an open_clip model-config JSON) buildable under its file stem."""
    import open_clip

    path = Path(model_config).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"open_clip model config {path} does not exist")
    if path.stem != model:
        raise ConfigError(f"model_config {path} defines the architecture {path.stem!r} (its file name); "
                         f"set model: {path.stem}")
    keys = ("embed_dim", "vision_cfg", "text_cfg")
    if not all(k in json.loads(path.read_text(encoding="utf-8")) for k in keys):
        # open_clip silently skips such a file, which would surface later as "model not found"
        raise ConfigError(f"{path} is not an open_clip model config: it needs the keys {', '.join(keys)}")
    open_clip.add_model_config(path)


def _check_architecture(model: str) -> None:
    import open_clip

    if open_clip.get_model_config(model) is None:
        raise ModelNotFoundError(f"open_clip has no architecture {model!r} (e.g. RN50, ViT-B-32, ViT-H-14; "
                                 "`open_clip.list_models()` lists them); for another one give "
                                 "scorer.model_config: path/to/<name>.json")


class _DropRandomInitWarning(logging.Filter):
    """open_clip warns "initialized randomly" before we load a local checkpoint into the model: drop that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextmanager
def _quiet_random_init() -> Iterator[None]:
    root = logging.getLogger()  # open_clip logs through the root logger
    log_filter = _DropRandomInitWarning()
    root.addFilter(log_filter)
    try:
        yield
    finally:
        root.removeFilter(log_filter)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A checkpoint's tensors, read safely (safetensors, or ``torch.load(weights_only=True)``)."""
    state = load_tensors(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # open_clip training checkpoints
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise TypeError(f"holds a {type(state).__name__}, not a state dict")
    # Saved from DistributedDataParallel: drop the wrapper's prefix.
    return {k.removeprefix("module."): v for k, v in state.items()}


def _checkpoint(model: str, pretrained: str) -> Path:
    """``pretrained`` as a local checkpoint file, or an error saying what it could have meant."""
    import open_clip

    path = Path(pretrained).expanduser()
    if path.is_file():
        if path.suffix not in CHECKPOINT_SUFFIXES:
            raise ModelNotFoundError(f"cannot load CLIP checkpoint {path}: use one of {', '.join(CHECKPOINT_SUFFIXES)}")
        return path
    if path.suffix not in CHECKPOINT_SUFFIXES and "/" not in pretrained:  # meant as a tag
        known = open_clip.list_pretrained_tags_by_model(model)
        tags = f"its tags: {', '.join(known)}" if known else "open_clip has no pretrained tag for it"
        raise ModelNotFoundError(f"{pretrained!r} is neither a pretrained tag of open_clip model {model!r} ({tags}) "
                                 "nor a checkpoint file")
    raise ModelNotFoundError(
        f"CLIP checkpoint {path} does not exist. Give an open_clip pretrained tag (e.g. pretrained: openai) or a "
        f"local file ({', '.join(CHECKPOINT_SUFFIXES)}); to save one on a machine with network access: "
        "`model = open_clip.create_model(MODEL, pretrained=TAG)`, then "
        "`safetensors.torch.save_file(model.state_dict(), 'model.safetensors')`.")


def _load_file(clip: nn.Module, path: Path) -> None:
    """Load a local checkpoint into ``clip`` strictly: every tensor must match the architecture."""
    try:
        state = read_state_dict(path)
        logit_scale = getattr(clip, "logit_scale", None)
        if isinstance(logit_scale, Tensor) and "logit_scale" in state:  # scalar in some checkpoints, (1,) in others
            state["logit_scale"] = state["logit_scale"].reshape(logit_scale.shape)
        clip.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, TypeError, ValueError) as err:
        raise ModelNotFoundError(f"cannot load CLIP checkpoint {path} into this architecture: {err}") from err


def _tag_error(model: str, tag: str, tag_cfg: dict[str, Any], err: Exception) -> ModelNotFoundError:
    """How to get the weights of an open_clip pretrained tag (as ``load_pretrained``'s message)."""
    hub = tag_cfg.get("hf_hub", "").rstrip("/")
    repo = hub if hub.count("/") <= 1 else hub.rsplit("/", 1)[0]  # 'org/repo/' or 'org/repo/file.bin'
    fetch = f"`huggingface-cli download {repo}`" if repo else f"download {tag_cfg.get('url')}"
    return ModelNotFoundError(
        f"cannot load open_clip weights {model!r}/{tag!r}: {err}\n"
        f"Pretrained tags need network access (Hugging Face Hub); with HF_HUB_OFFLINE=1 only weights already in the "
        f"cache load. To fetch once: {fetch}. Or give a local checkpoint file as scorer.pretrained.")


def load_open_clip(model: str, pretrained: str | None, model_config: str | None = None,
                   precision: str = "fp32") -> nn.Module:
    """An open_clip model, frozen: ``pretrained`` is an open_clip tag, a local checkpoint file, or None (random)."""
    import open_clip

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if model_config is not None:
        _register_config(model, model_config)
    _check_architecture(model)
    tag_cfg = open_clip.get_pretrained_cfg(model, pretrained) if pretrained else {}
    # No tower weights from the Hub: a CLIP checkpoint (or nothing, for random models) is all we load.
    options: dict[str, Any] = {"precision": precision, "pretrained_image": False, "pretrained_hf": False}
    if tag_cfg:
        # OpenAI-trained weights need QuickGELU; open_clip only warns on a mismatch, and accuracy drops silently.
        config_gelu = bool(open_clip.get_model_config(model).get("quick_gelu", False))
        try:
            clip = open_clip.create_model(model, pretrained=pretrained, force_quick_gelu=bool(
                tag_cfg.get("quick_gelu", config_gelu)), **options)
        except (OSError, RuntimeError, ValueError) as err:
            raise _tag_error(model, pretrained, tag_cfg, err) from err
    else:
        checkpoint = _checkpoint(model, pretrained) if pretrained else None  # fail before building the model
        with _quiet_random_init():
            clip = open_clip.create_model(model, pretrained=None, **options)
        if checkpoint is not None:
            _load_file(clip, checkpoint)
    return clip.eval().requires_grad_(False)


def _square_size(clip: nn.Module) -> int:
    """Pixels per side the vision tower takes (the datamodule resizes and centre-crops to it)."""
    visual = clip.visual
    size = getattr(visual, "image_size", None) or getattr(visual, "preprocess_cfg", {}).get("size")
    if isinstance(size, Sequence):
        if len(set(size)) != 1:
            raise ValueError(f"the vision tower takes {tuple(size)} images; only square inputs are supported")
        size = size[0]
    return int(size)


# ---- the scorer ------------------------------------------------------------------------------------
class CLIPScorer(Scorer):
    """Zero-shot CLIP: p(c | x) = softmax(scale * cos(image embedding, class embedding)).

    Args:
        clip: an open_clip model (``encode_image``, ``encode_text``, ``logit_scale``).
        tokenizer: open_clip's tokenizer for it (list of strings -> token ids).
        batch_size: prompts (and images) per forward pass.
        temperature: if given, logits are cos / temperature instead of cos * exp(logit_scale).
        input_dtype: the dtype images are cast to (that of the model's precision).
    """

    image_channels = 3

    def __init__(self, clip: nn.Module, tokenizer: Any, batch_size: int = 64, temperature: float | None = None,
                 input_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if batch_size < 1 or (temperature is not None and temperature <= 0):
            raise ConfigError("batch_size must be >= 1 and temperature > 0")
        self.clip, self.tokenizer = clip, tokenizer
        self.batch_size, self.temperature, self.input_dtype = batch_size, temperature, input_dtype
        self.image_size = _square_size(clip)
        # The normalisation the model was trained with (open_clip records it per pretrained tag).
        from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        cfg = getattr(clip.visual, "preprocess_cfg", {}) or {}
        mean = getattr(clip.visual, "image_mean", None) or cfg.get("mean") or OPENAI_DATASET_MEAN
        std = getattr(clip.visual, "image_std", None) or cfg.get("std") or OPENAI_DATASET_STD
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("class_embeddings", torch.empty(0), persistent=False)

    @property
    def scale(self) -> float:
        """The logit scale: CLIP's learned exp(logit_scale), or 1 / temperature when one is given."""
        if self.temperature is not None:
            return 1.0 / self.temperature
        return float(self.clip.logit_scale.float().exp())

    # ---- embeddings ---------------------------------------------------------------------------------
    def encode_texts(self, texts: Sequence[str]) -> Tensor:
        """L2-normalised text embeddings (len(texts), d), float32, in batches of ``batch_size``."""
        tokens = self.tokenizer(list(texts))
        parts = [self.clip.encode_text(tokens[s : s + self.batch_size].to(self.device)).float()
                 for s in range(0, len(tokens), self.batch_size)]
        return F.normalize(torch.cat(parts), dim=-1)

    def encode_images(self, images: Tensor) -> Tensor:
        """L2-normalised image embeddings (B, d), float32, from images in [-1, 1]."""
        pixels = ((images.to(self.device, torch.float32) + 1) / 2 - self.mean) / self.std
        parts = [self.clip.encode_image(pixels[s : s + self.batch_size].to(self.input_dtype)).float()
                 for s in range(0, len(pixels), self.batch_size)]
        return F.normalize(torch.cat(parts), dim=-1)

    def prepare(self, labels: LabelSet) -> None:
        """Class embeddings, once per label set: the mean of each class's normalised prompt embeddings."""
        if labels == self.labels and self.class_embeddings.numel():
            return  # the same label set again (a second predict run): nothing to recompute
        super().prepare(labels)
        with torch.inference_mode():
            prompts = self.encode_texts(labels.prompts)
            owner = torch.tensor(labels.prompt_class, device=prompts.device)
            sums = prompts.new_zeros(labels.num_classes, prompts.shape[1]).index_add_(0, owner, prompts)
            # Averaging unit vectors shortens them; re-normalise so that logits stay cosines times the scale.
            self.class_embeddings = F.normalize(sums / torch.bincount(owner).unsqueeze(1), dim=-1)

    # ---- scoring ------------------------------------------------------------------------------------
    def text_image_scores(self, images: Tensor, texts: Sequence[str]) -> Tensor:
        """Cosine similarities (n_images, n_texts) of images in [-1, 1] with free texts (image-text matching).

        Nothing is cached or ensembled: each text is one prompt (e.g. Winoground's captions). The scorer's
        logits for a label set with one prompt per class are ``scale`` times these.
        """
        with torch.inference_mode():
            return self.encode_images(images) @ self.encode_texts(texts).T

    def score(self, images: Tensor, ids: list[str]) -> list[dict[str, Any]]:
        if self.labels is None or not self.class_embeddings.numel():
            raise RuntimeError("call prepare(labels) before score(): the class embeddings are computed there")
        with torch.inference_mode():
            logits = (self.scale * self.encode_images(images) @ self.class_embeddings.T).cpu()
        probs = torch.softmax(logits, dim=1)
        return [{"prediction": int(p.argmax()), "probs": p.tolist(), "logits": z.tolist(), "nfe": 0}
                for p, z in zip(probs, logits, strict=True)]


@SCORERS.register("clip")
def clip(model: str = "RN50", pretrained: str | None = "openai", model_config: str | None = None,
         batch_size: int = 64, temperature: float | None = None, precision: str = "fp32") -> CLIPScorer:
    """Zero-shot CLIP via open_clip (prompt-ensembled class embeddings; no denoiser calls).

    ``model`` is an open_clip architecture (``model_config``: a model-config JSON named after it, for any
    other one); ``pretrained`` an open_clip tag (from the Hub), a local checkpoint (.safetensors, .pt,
    .bin) or None (random weights); ``precision`` one of fp32, fp16, bf16, pure_fp16, pure_bf16.
    """
    import open_clip

    network = load_open_clip(model, pretrained, model_config, precision)
    try:
        tokenizer = open_clip.get_tokenizer(model)  # CLIP's BPE ships with open_clip; others may need the Hub
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(f"cannot load the tokenizer of open_clip model {model!r}: {err}") from err
    return CLIPScorer(network, tokenizer, batch_size=batch_size, temperature=temperature,
                      input_dtype=PRECISIONS[precision])
