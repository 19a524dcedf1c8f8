"""Baselines that need fitting (Li et al. 2023, Table 1): "SD Features" and "Synthetic SD Data".

``dcbench fit-baseline --config CFG --run-dir DIR`` prepares their training data from a diffusion
backbone (mid-block features of real labelled images, or images generated from the class prompts),
trains a classifier with Lightning, and writes ``DIR/model.safetensors`` + ``DIR/baseline.json``,
which the ``sd-features`` and ``synthetic-data`` scorers load (``scorer.checkpoint: DIR``).

* :mod:`dcbench.baselines.store`: the fitted-baseline directory (save, load, clear errors);
* :mod:`dcbench.baselines.training`: the classifier training both baselines share;
* :mod:`dcbench.baselines.fit`: ``fit_baseline``, the command.

Nothing is imported here: the scorers import the store, and the fit imports the scorers.
"""

