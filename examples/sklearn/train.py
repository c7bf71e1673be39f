"""Tune a real scikit-learn classifier with the ivory sweeper (see README.md here).

The job fits ``cfg.model`` on four of five stratified folds of a data set that ships
with scikit-learn (no download) and returns the error on the fifth, fold ``cfg.fold``:
that number is the sweep's score. When an MLflow run is active (under the ivory
sweeper, the job's own child run) it also logs ``val_error``, ``train_error`` and
``fit_seconds`` there; a single run (no ``-m``) touches no store.

    python examples/sklearn/train.py model=forest                     # one job
    python examples/sklearn/train.py -m model=logreg,svm model.C=1e-1_1e3:5.log scale=true,false
"""

import logging
import sys
import time
from typing import Any

import hydra
from omegaconf import DictConfig

N_SPLITS = 5
log = logging.getLogger(__name__)


def load_data(name: str, max_samples: int | None) -> tuple[Any, Any]:
    """The data set's (X, y), at most ``max_samples`` rows of it (a stratified sample)."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    loaders = {
        "digits": datasets.load_digits,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
    }
    if name not in loaders:
        raise ValueError(f"unknown data {name!r}: pick one of {', '.join(loaders)}")
    X, y = loaders[name](return_X_y=True)
    if max_samples is not None and max_samples < len(y):
        X, _, y, _ = train_test_split(X, y, train_size=max_samples, stratify=y, random_state=0)
    return X, y


def build_model(model: DictConfig, scale: bool) -> Any:
    """The estimator that ``model.name`` names, with the group's params."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if model.name == "logreg":
        estimator = LogisticRegression(C=float(model.C), max_iter=int(model.max_iter))
    elif model.name == "svm":
        gamma = model.gamma if isinstance(model.gamma, str) else float(model.gamma)
        estimator = SVC(C=float(model.C), gamma=gamma)
    elif model.name == "forest":
        depth = None if model.max_depth is None else int(model.max_depth)
        return RandomForestClassifier(
            n_estimators=int(model.n_estimators), max_depth=depth, random_state=0, n_jobs=1
        )
    else:
        raise ValueError(f"unknown model {model.name!r}: logreg, svm or forest")
    return make_pipeline(StandardScaler(), estimator) if scale else estimator


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def train(cfg: DictConfig) -> float:
    """Fit on the other folds, return the validation error (1 - accuracy) of fold ``cfg.fold``."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    if not 0 <= cfg.fold < N_SPLITS:
        raise ValueError(f"fold must be 0 to {N_SPLITS - 1}, not {cfg.fold}")
    X, y = load_data(cfg.data, cfg.max_samples)
    folds = StratifiedKFold(n_splits=N_SPLITS, shuffle=True, random_state=0)
    train_index, val_index = list(folds.split(X, y))[cfg.fold]
    model = build_model(cfg.model, cfg.scale)

    started = time.perf_counter()
    model.fit(X[train_index], y[train_index])
    fit_seconds = time.perf_counter() - started
    train_error = float(np.mean(model.predict(X[train_index]) != y[train_index]))
    val_error = float(np.mean(model.predict(X[val_index]) != y[val_index]))
    log.info(f"val_error={val_error:.4g} train_error={train_error:.4g} fit={fit_seconds:.2f}s")

    # Under the ivory sweeper mlflow is already imported (the job's child run is active);
    # elsewhere this skips importing it (1-2 s) just to find that no run is active.
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and mlflow.active_run() is not None:
        mlflow.log_metrics(
            {"val_error": val_error, "train_error": train_error, "fit_seconds": fit_seconds}
        )
    return val_error


if __name__ == "__main__":
    train()
