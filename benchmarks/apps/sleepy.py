"""A job that takes ``sleep`` seconds (0.2 by default) and returns a score."""

import time

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg: DictConfig) -> float:
    time.sleep(float(cfg.get("sleep", 0.2)))
    return float(cfg.get("x", 0))


if __name__ == "__main__":
    main()
