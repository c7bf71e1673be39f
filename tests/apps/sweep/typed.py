"""A typed app: ``lr: float`` rejects a range string given as ``lr=...``."""

from dataclasses import dataclass

import hydra
from hydra.core.config_store import ConfigStore


@dataclass
class Config:
    lr: float = 0.01
    x: int = 0


ConfigStore.instance().store(name="typed", node=Config)


@hydra.main(version_base="1.3", config_name="typed", config_path=None)
def main(cfg: Config) -> float:
    return cfg.lr + cfg.x


if __name__ == "__main__":
    main()
