"""An example third-party dcbench plugin: the ``example-gaussian`` backbone (see ``gaussian.py``)."""

from dcbench_example.gaussian import GaussianBackbone, example_gaussian

__all__ = ["GaussianBackbone", "example_gaussian"]
