"""A test app whose score is known: (a - 2)**2 + b + model.penalty.

``ret`` picks what the job returns: number, mapping, none or nan_score;
``fail_at`` makes the job with that ``a`` raise; the environment variable
``INTERRUPT_AT`` interrupts the sweep at that ``a``; ``log_metric`` logs the score
to the active MLflow run under that name.
"""

import os

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    if cfg.fail_at is not None and cfg.a == cfg.fail_at:
        raise RuntimeError(f"planned failure at a={cfg.a}")
    if os.environ.get("INTERRUPT_AT") == str(cfg.a):
        raise KeyboardInterrupt  # as a Ctrl-C would, in the middle of the sweep
    score = (cfg.a - 2) ** 2 + cfg.b + cfg.model.penalty
    if cfg.log_metric:
        import mlflow

        mlflow.log_metric(cfg.log_metric, score + 100)
        mlflow.log_metric(cfg.log_metric, score)
    if cfg.ret == "mapping":
        return {"loss": score, "acc": -score}
    if cfg.ret == "none":
        return None
    if cfg.ret == "nan_score":
        return float("nan")
    return score


if __name__ == "__main__":
    main()
