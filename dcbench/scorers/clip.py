"""Zero-shot CLIP (Radford et al. 2021) through open_clip: the contrastive baseline to Diffusion Classifier.

Each class is one text embedding: the normalised embeddings of its prompts are averaged and
re-normalised (CLIP's prompt ensembling), once per label set. An image is scored by the cosine
similarity of its embedding to every class embedding, times CLIP's learned logit scale; no denoiser
is evaluated (``nfe`` is 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dcbench.config import ConfigError
from dcbench.data.labels import LabelSet
from dcbench.openclip import PRECISIONS, load_open_clip, load_tokenizer
from dcbench.registry import SCORERS
from dcbench.scorers.base import Scorer

__all__ = ["CLIPScorer"]

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
    def text_image_scores(self, images: Tensor, texts: Sequence[str], key: str = "") -> tuple[Tensor, int]:
        """Cosine similarities (n_images, n_texts) of images in [-1, 1] with free texts, and the NFE (0).

        Image-text matching (:mod:`dcbench.matching`; ``key`` is unused: nothing is random). Nothing is
        cached or ensembled: each text is one prompt. The scorer's logits for a label set with one
        prompt per class are ``scale`` times these.
        """
        with torch.inference_mode():
            return self.encode_images(images) @ self.encode_texts(texts).T, 0

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
    network = load_open_clip(model, pretrained, model_config, precision)
    return CLIPScorer(network, load_tokenizer(model), batch_size=batch_size, temperature=temperature,
                      input_dtype=PRECISIONS[precision])
