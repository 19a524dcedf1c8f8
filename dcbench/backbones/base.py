"""What a diffusion backbone is to dcbench, and the loading code every backbone shares.

A backbone answers three questions and nothing more: how to encode an image to x0, how to turn a
label set into conditions (computed once per label set), and what the network outputs for a batch
(x_t, t, cond). The forward process and the error live in :mod:`dcbench.diffusion`; the Monte Carlo
loop lives in the scorer.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dcbench.data.labels import LabelSet, LabelSetError
from dcbench.diffusion.process import VPProcess
from dcbench.embedded import resolve_pretrained

__all__ = ["Backbone", "ModelNotFoundError", "class_ids", "load_pretrained", "load_process", "split_learned_variance",
           "torch_dtype"]

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ModelNotFoundError(FileNotFoundError):
    """Weights that cannot be found or loaded; the message says how to get them."""


class Backbone(nn.Module, ABC):
    """A conditional diffusion model as the classifier sees it."""

    process: VPProcess
    #: pixel resolution the model expects (None: any), and 1 (grey) or 3 (RGB) channels
    image_size: int | None = None
    image_channels: int = 3
    #: real images' x0 lies in [-x0_range, x0_range]: 1 for pixel models (images in [-1, 1]), None for
    #: unbounded latents; samplers clip their x0 estimates to it
    x0_range: float | None = 1.0
    #: whether the network also outputs a learned variance (improved DDPM's learned range; DiT)
    learned_variance: bool = False

    @abstractmethod
    def encode_images(self, images: Tensor) -> Tensor:
        """Images in [-1, 1], (B, C, H, W) -> x0 in the space the model diffuses (pixels or latents)."""

    @abstractmethod
    def encode_conditions(self, labels: LabelSet) -> Tensor:
        """One condition per prompt of ``labels`` (text embeddings or class ids), first dim = prompts."""

    @abstractmethod
    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """The network's output in ``self.process.prediction_type`` (learned-variance channels split off)."""

    def network_output(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """The network's whole output, learned-variance channels included (backbones that have them override it)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its network's raw output")

    def forward_with_variance(self, x_t: Tensor, t: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        """The prediction and the learned-variance values v in [-1, 1] (for the variational bound objectives)."""
        if not self.learned_variance:
            raise NotImplementedError(f"{type(self).__name__} has no learned variance, which the vlb objectives "
                                      "need (a DiT, or a model whose output has twice its input's channels); "
                                      "use loss: l2")
        out = self.network_output(x_t, t, cond)
        channels = x_t.shape[1]
        return out[:, :channels], out[:, channels:]

    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        """One condition per free text, first dim = texts (text-conditional backbones override this)."""
        raise NotImplementedError(f"{type(self).__name__} is class-conditional: it cannot take free text")

    def null_condition(self) -> Tensor:
        """The unconditional condition, first dim 1: the empty prompt's (classifier-free guidance, features).

        Text-conditional models are trained with captions dropped to the empty text, so that is their p(x).
        """
        return self.encode_prompts([""])

    def decode_latents(self, x0: Tensor) -> Tensor:
        """x0 in the space the model diffuses -> images in [-1, 1], (B, C, H, W): the inverse of ``encode_images``."""
        raise NotImplementedError(f"{type(self).__name__} cannot decode x0 to images")

    @property
    def dtype(self) -> torch.dtype:
        """The dtype network inputs are cast to: the first parameter's (or buffer's), else float32."""
        for tensor in (*self.parameters(), *self.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
        return torch.float32


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"float16"`` -> ``torch.float16``; a clear error for anything else."""
    if isinstance(name, torch.dtype):
        return name
    if name not in DTYPES:
        raise ValueError(f"torch_dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def _not_found(what: str, path: str, subfolder: str | None, err: Exception) -> ModelNotFoundError:
    where = f"{path}/{subfolder}" if subfolder else path
    return ModelNotFoundError(
        f"cannot load {what} from {where!r}: {err}\n"
        f"Give a local directory in diffusers layout or a Hugging Face Hub id. Hub ids need network access "
        f"(gated models also `huggingface-cli login`); with HF_HUB_OFFLINE=1 only models already in the cache load. "
        f"To fetch once: `huggingface-cli download {path}`."
    )


def load_pretrained(cls: Any, path: str, subfolder: str | None = None, *, revision: str | None = None,
                    dtype: str | torch.dtype | None = None, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` (diffusers or transformers) with one clear error for missing weights."""
    try:
        path = resolve_pretrained(path)
    except FileNotFoundError as err:  # an embedded model that is not shipped: say how to make it
        raise ModelNotFoundError(str(err)) from err
    if dtype is not None:
        kwargs["torch_dtype"] = torch_dtype(dtype)
    if revision is not None:
        kwargs["revision"] = revision
    if subfolder is not None:
        kwargs["subfolder"] = subfolder
    try:
        return cls.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:
        raise _not_found(cls.__name__, path, subfolder, err) from err


def load_process(path: str, subfolder: str = "scheduler", revision: str | None = None) -> VPProcess:
    """The forward process from a diffusers scheduler config (betas and prediction type)."""
    from diffusers import DDPMScheduler

    # Any DDPM-family scheduler config (PNDM, Euler, DDIM, ...) gives the same alphas_cumprod.
    scheduler = load_pretrained(DDPMScheduler, path, subfolder, revision=revision)
    return VPProcess.from_scheduler(scheduler)


def read_class_names(path: str, filename: str, key: str) -> list[str] | None:
    """Class names stored beside a model (``dcbench.json`` classes, or a pipeline's ``id2label``)."""
    file = Path(resolve_pretrained(path)) / filename
    if not file.is_file():
        return None
    data = json.loads(file.read_text()).get(key)
    if isinstance(data, dict):  # id2label: {"0": "tench, Tinca tinca", ...}
        return [data[k] for k in sorted(data, key=int)]
    return list(data) if data else None


def split_learned_variance(out: Tensor, channels: int) -> tuple[Tensor, Tensor | None]:
    """(prediction, v) of a network output: with learned variance it has 2C channels, the last C being v."""
    if out.shape[1] == 2 * channels:
        return out[:, :channels], out[:, channels:]
    return out, None


def class_ids(labels: LabelSet, model_classes: Sequence[str] | None, num_model_classes: int) -> Tensor:
    """Model class id for every prompt of ``labels``.

    With ``model_classes`` known, names are looked up among them, so a subset of the model's classes
    works: a prompt that names a model class stands for it (ObjectNet's classes each cover several ImageNet
    classes, one prompt each), any other prompt for its class's name. A name matches a whole entry first,
    else one of an entry's comma-separated synonyms (ImageNet's "tench, Tinca tinca"). A name that several
    entries share (ImageNet has two "crane"s and two "cardigan"s) takes them in order of appearance. Without
    names, dataset class i is model class i.
    """
    if model_classes is None:
        if labels.num_classes > num_model_classes:
            raise LabelSetError(f"the dataset has {labels.num_classes} classes but the model knows only "
                                f"{num_model_classes}")
        return torch.tensor(labels.prompt_class, dtype=torch.long)
    whole: dict[str, list[int]] = defaultdict(list)
    synonym: dict[str, list[int]] = defaultdict(list)
    for i, entry in enumerate(model_classes):
        whole[_normal(entry)].append(i)
        for name in entry.split(","):
            synonym[_normal(name)].append(i)
    owners: dict[str, list[int]] = defaultdict(list)  # per name, the dataset classes using it, in order

    def lookup(name: str, owner: int) -> int | None:
        key = _normal(name)
        ids = whole.get(key) or synonym.get(key)
        if not ids:
            return None
        if owner not in owners[key]:
            owners[key].append(owner)
        return ids[min(owners[key].index(owner), len(ids) - 1)]

    result, missing = [], []
    for prompt, owner in zip(labels.prompts, labels.prompt_class, strict=True):
        found = lookup(prompt, owner)
        if found is None:
            found = lookup(labels.classes[owner], owner)
        if found is None:
            missing.append(labels.classes[owner])
        result.append(found)
    if missing:
        raise LabelSetError(f"classes {sorted(set(missing))[:5]} are not among the model's {len(model_classes)} "
                            f"class names (e.g. {list(model_classes[:3])}); rename them to the model's names")
    return torch.tensor(result, dtype=torch.long)


def _normal(name: str) -> str:
    return name.strip().lower()
