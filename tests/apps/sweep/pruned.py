"""A job that reports a learning curve and stops when the sweep's pruner says so.

Its curve at step k is (a - 2)**2 + 1 / (k + 1), so jobs far from a=2 are the
ones a median pruner stops. Every reported step is appended to ``record``.
"""

import json

import hydra
import optuna
from omegaconf import DictConfig

import ivory_hydra


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    trial = ivory_hydra.trial()
    assert trial is not None, "a job of an ivory sweep has its trial"
    assert trial.params["a"] == cfg.a
    value = 0.0
    for step in range(5):
        value = (cfg.a - 2) ** 2 + 1 / (step + 1)
        trial.report(value, step)
        if cfg.record:
            with open(cfg.record, "a") as out:
                out.write(json.dumps({"a": cfg.a, "step": step}) + "\n")
        if trial.should_prune():
            raise optuna.TrialPruned(f"at step {step}")
    return value


if __name__ == "__main__":
    main()
