# Copyright (c) Facebook, Inc. and its affiliates. All Rights Reserved
# From Hydra (https://github.com/facebookresearch/hydra, MIT License: see LICENSE here),
# plugins/hydra_optuna_sweeper/example/multi-objective.py. Changed: version_base=None.
from typing import Tuple  # noqa: UP035 - as in the original

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="multi-objective-conf", config_name="config")
def binh_and_korn(cfg: DictConfig) -> Tuple[float, float]:  # noqa: UP006
    x: float = cfg.x
    y: float = cfg.y

    v0 = 4 * x**2 + 4 * y**2
    v1 = (x - 5) ** 2 + (y - 5) ** 2
    return v0, v1


if __name__ == "__main__":
    binh_and_korn()
