"""Loading open_clip models: pretrained tags, local checkpoints, ``local-dir:``/``hf-hub:`` folders, configs.

Shared by the CLIP scorer and by backbones conditioned on an open_clip text tower. Every path ends in
a frozen model or a :class:`ModelNotFoundError` that says how to get the weights.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dcbench.backbones.base import ModelNotFoundError
from dcbench.checkpoints import load_tensors
from dcbench.config import ConfigError
from dcbench.embedded import EMBEDDED_PREFIX, resolve_pretrained

__all__ = ["PRECISIONS", "create_from_config", "load_open_clip", "load_tokenizer", "model_id", "read_state_dict",
           "text_states"]

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


FOLDER_SCHEMAS = ("local-dir:", "hf-hub:")


def model_id(model: str) -> str:
    """``embedded:NAME/clip`` -> open_clip's ``local-dir:<shipped folder>``; anything else unchanged."""
    if model.startswith(EMBEDDED_PREFIX):
        return "local-dir:" + resolve_pretrained(model)
    return model


def _load_folder(model: str, options: dict[str, Any]) -> nn.Module:
    """A ``local-dir:``/``hf-hub:`` model: config and weights come from the folder (``pretrained`` is unused)."""
    import open_clip

    if model.startswith("local-dir:"):
        folder = Path(model.removeprefix("local-dir:")).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise ModelNotFoundError(f"{folder} is not an open_clip model folder: it needs open_clip_config.json "
                                     "and open_clip_model.safetensors (open_clip's save_for_hf layout)")
    try:
        return open_clip.create_model(model, **options)
    except (OSError, RuntimeError, ValueError) as err:
        raise ModelNotFoundError(f"cannot load open_clip model {model!r}: {err}. hf-hub: ids need network "
                                 "access (or the Hugging Face cache); local-dir: folders need "
                                 "open_clip_config.json and the weights") from err


def load_open_clip(model: str, pretrained: str | None = None, model_config: str | None = None,
                   precision: str = "fp32") -> nn.Module:
    """An open_clip model, frozen.

    ``model`` is an architecture name (``pretrained``: an open_clip tag, a local checkpoint file, or
    None for random weights), or a folder with its own config and weights: ``local-dir:PATH``,
    ``hf-hub:ORG/REPO`` or ``embedded:NAME/clip``.
    """
    import open_clip

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    # No tower weights from the Hub: a CLIP checkpoint (or nothing, for random models) is all we load.
    options: dict[str, Any] = {"precision": precision, "pretrained_image": False, "pretrained_hf": False}
    model = model_id(model)
    if model.startswith(FOLDER_SCHEMAS):
        return _load_folder(model, options).eval().requires_grad_(False)
    if model_config is not None:
        _register_config(model, model_config)
    _check_architecture(model)
    tag_cfg = open_clip.get_pretrained_cfg(model, pretrained) if pretrained else {}
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


def load_tokenizer(model: str) -> Any:
    """open_clip's tokenizer for ``model`` (CLIP's BPE ships with open_clip; others may need the Hub)."""
    import open_clip

    try:
        return open_clip.get_tokenizer(model_id(model))
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelNotFoundError(f"cannot load the tokenizer of open_clip model {model!r}: {err}") from err


def create_from_config(model_cfg: dict[str, Any]) -> tuple[nn.Module, Any]:
    """A randomly initialised open_clip model and its tokenizer from a model config given as data."""
    import open_clip

    clip = open_clip.CLIP(**model_cfg)
    # What open_clip.create_model records for untagged models; the CLIP scorer standardises with it.
    clip.visual.image_mean, clip.visual.image_std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    context_length = model_cfg.get("text_cfg", {}).get("context_length", 77)
    return clip, open_clip.SimpleTokenizer(context_length=context_length)


def text_states(clip: nn.Module, tokens: Tensor, layer: int = -1) -> Tensor:
    """Per-token states (B, L, width) of an open_clip text tower after the final LayerNorm.

    ``layer=-1`` is the last block; Stable Diffusion 2 conditions on OpenCLIP's penultimate one (-2).
    """
    if layer >= 0:
        raise ValueError(f"layer counts from the end (-1 is the last block), got {layer}")
    out = clip.forward_intermediates(text=tokens, text_indices=-layer, normalize_intermediates=True,
                                     intermediates_only=True)
    return out["text_intermediates"][0]
