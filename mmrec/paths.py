"""The dataset layout, kept under its old import name for notebooks and callers outside the tree.

The layouts (dataset, ETL run, training run) and every other contract between stages live in
`mmrec.contracts`; this module only re-exports the dataset part.
"""

from mmrec.contracts import DATA_DIR_ENV, DEFAULT_DATA_DIR, DatasetPaths, default_data_dir

__all__ = ["DATA_DIR_ENV", "DEFAULT_DATA_DIR", "DatasetPaths", "default_data_dir"]
