"""What is written to the stores: the Optuna storage (the truth), its ledger, the MLflow mirror."""
