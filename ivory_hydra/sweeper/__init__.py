"""The Hydra front end: parse overrides, validate, launch the engine's batches, report."""
