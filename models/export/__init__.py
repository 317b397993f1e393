"""Export a trained run as a Triton model repository (entry point: ensemble.export)."""
