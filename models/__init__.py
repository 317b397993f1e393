"""The training side of the pipeline: Merlin Models training, evaluation and export."""
