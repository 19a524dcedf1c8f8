"""dcbench: diffusion models as image classifiers, evaluated side by side with Lightning."""

from dcbench.registry import ALL, BACKBONES, DATASETS, PRUNING, SAMPLERS, SCORERS, SHIFTS, Registry, RegistryError

__version__ = "0.1.0"

__all__ = ["ALL", "BACKBONES", "DATASETS", "PRUNING", "SAMPLERS", "SCORERS", "SHIFTS", "Registry",
           "RegistryError", "__version__"]
