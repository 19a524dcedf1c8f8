"""Diffusion backbones: adapters from diffusers models to what the classifier needs."""

from dcbench.backbones import dit, stable_diffusion, text_unet, unet_class  # noqa: F401  (registers the built-ins)
from dcbench.backbones.base import Backbone, ModelNotFoundError

__all__ = ["Backbone", "ModelNotFoundError"]
