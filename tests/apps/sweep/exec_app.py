"""Runs ``cfg.check`` (Python code) inside the job: for checks made in the job's process."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg: DictConfig) -> float:
    exec(cfg.check)  # noqa: S102 - test code given on the command line
    return float(cfg.get("a", 0))


if __name__ == "__main__":
    main()
