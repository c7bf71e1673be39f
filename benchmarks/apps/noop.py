"""A job that does nothing but return a score: the sweep's own cost is all that is left."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg: DictConfig) -> float:
    return float(cfg.get("x", 0))


if __name__ == "__main__":
    main()
