"""The pure core: ranges, plans, outcomes, how runs are shown (no I/O, Hydra, Optuna, MLflow)."""
