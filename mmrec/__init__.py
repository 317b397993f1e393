"""mmrec: a multi-modal movie recommender pipeline on NVIDIA Merlin.

The package holds what every stage shares (paths, typed configuration, atomic file writes,
errors, progress) and the command line. The stages themselves live in `workflows` (data side)
and `models` (training side). Nothing here imports TensorFlow or PyTorch, so the features
environment and the pipeline environment can both import it.
"""

__version__ = "0.1.0"
