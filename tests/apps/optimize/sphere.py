"""A 2-D sphere whose minimum is off-centre, at (1.5, -0.5)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def sphere(cfg: DictConfig) -> float:
    return (cfg.x - 1.5) ** 2 + (cfg.y + 0.5) ** 2


def space(cfg: DictConfig, trial) -> None:
    """A whole search space as a custom_search_space (``sphere.space``)."""
    trial.suggest_float("+x", -5.0, 5.0)
    trial.suggest_float("+y", -5.0, 5.0)


if __name__ == "__main__":
    sphere()
