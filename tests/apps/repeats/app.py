"""A cross-validation app whose folds disagree: fold 0 alone picks another lr than the mean.

Fold scores (lower is better), by lr:

=====  =====================================
lr     folds 0, 1, 2, 3, 4
=====  =====================================
0.1    0.1, 1.0, 1.0, 1.0, 1.0  (mean 0.82)
0.01   0.2, 0.3, 0.3, 0.3, 0.3  (mean 0.28: the best)
0.001  0.9, 0.9, 0.9, 0.9, 0.9  (poor on every fold)
=====  =====================================

``record`` names a file to which every job appends one JSON line when it
starts and one when it ends; the environment variable ``FAIL_AT``
("<lr>/<fold>") makes that repeat raise.
"""

import json
import os
import time

import hydra
from omegaconf import DictConfig

SCORES = {
    0.1: [0.1, 1.0, 1.0, 1.0, 1.0],
    0.01: [0.2, 0.3, 0.3, 0.3, 0.3],
    0.001: [0.9, 0.9, 0.9, 0.9, 0.9],
}


def record(cfg: DictConfig, event: str) -> None:
    if cfg.record:
        line = {"event": event, "lr": cfg.lr, "fold": cfg.fold, "pid": os.getpid()}
        with open(cfg.record, "a") as out:
            out.write(json.dumps(line) + "\n")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    record(cfg, "start")
    if cfg.sleep:
        time.sleep(cfg.sleep)
    if os.environ.get("FAIL_AT") == f"{cfg.lr}/{cfg.fold}":
        raise RuntimeError(f"planned failure at lr={cfg.lr} fold={cfg.fold}")
    score = SCORES.get(cfg.lr, [0.5] * 5)[cfg.fold % 5]
    record(cfg, "end")
    return score


if __name__ == "__main__":
    main()
