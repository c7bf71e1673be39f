"""A small app to sweep: ``python examples/train.py -m lr=1e-3_1e2:6.log``.

It "trains" a quadratic model and returns its validation loss, which is the
sweep's score. It also logs to MLflow like any user code would; under the ivory
sweeper those calls land in the job's own child run.
"""

import math

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def train(cfg: DictConfig) -> float:
    """Return a loss that is smallest near lr=0.1, resnet and small dropout."""
    model_penalty = {"resnet": 0.0, "vit": 0.2}[cfg.model.name]
    loss = (math.log10(cfg.lr) + 1) ** 2 + model_penalty + cfg.dropout + 0.01 * cfg.fold
    try:
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.log_metric("train_loss", loss * 1.1)
    except ImportError:
        pass
    return loss


if __name__ == "__main__":
    train()
