"""A cross-validated job: ``sleep`` seconds, then a score for config ``x`` on ``fold``.

Even ``x`` are good configurations (about 0.1), odd ``x`` poor ones (about 1.0);
each fold adds a little noise.
"""

import time

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg: DictConfig) -> float:
    time.sleep(float(cfg.get("sleep", 0.3)))
    x, fold = int(cfg.x), int(cfg.fold)
    return (1.0 if x % 2 else 0.1) + 0.01 * ((x + fold) % 3)


if __name__ == "__main__":
    main()
