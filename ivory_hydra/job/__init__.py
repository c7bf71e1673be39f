"""What runs inside a job's own process: it owns the job's trial and MLflow child run."""
