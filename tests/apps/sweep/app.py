"""A test app whose score is known: (a - 2)**2 + b + model.penalty.

``ret`` picks what the job returns: number, mapping, none or nan_score;
``fail_at`` makes the job with that ``a`` raise (so does the environment variable
``FAIL_AT``, a comma-separated list of ``a`` values, which a rerun can drop without
changing the sweep); ``exit_at`` makes it call ``sys.exit(3)``; the environment
variable ``INTERRUPT_AT`` interrupts the sweep at that ``a``; ``log_metric`` logs
the score to the active MLflow run under that name; ``sleep`` makes every job
take that many seconds; ``say`` makes every job log one line (``job a=<a> says
<say>``) through Hydra's job logging; ``record`` names a file to which every job
appends one JSON line when it starts and one when it ends (the app's own record
of what ran, for the fault tests), with the ``CUDA_VISIBLE_DEVICES`` it saw.
"""

import json
import logging
import os
import sys
import time

import hydra
from omegaconf import DictConfig


def record(cfg: DictConfig, event: str, started: float) -> None:
    line = {
        "event": event,
        "a": cfg.a,
        "b": cfg.b,
        "model": cfg.model.name,
        "pid": os.getpid(),
        "devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "start": started,
        "end": time.time(),
    }
    with open(cfg.record, "a") as out:
        out.write(json.dumps(line) + "\n")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    started = time.time()
    if cfg.record:
        record(cfg, "start", started)
    if cfg.say:
        logging.getLogger(__name__).info(f"job a={cfg.a} says {cfg.say}")
    if cfg.sleep:
        time.sleep(cfg.sleep)
    failing = os.environ.get("FAIL_AT", "").split(",")
    if (cfg.fail_at is not None and cfg.a == cfg.fail_at) or str(cfg.a) in failing:
        raise RuntimeError(f"planned failure at a={cfg.a}")
    if cfg.exit_at is not None and cfg.a == cfg.exit_at:
        sys.exit(3)
    if os.environ.get("INTERRUPT_AT") == str(cfg.a):
        raise KeyboardInterrupt  # as a Ctrl-C would, in the middle of the sweep
    score = (cfg.a - 2) ** 2 + cfg.b + cfg.model.penalty
    if cfg.log_metric:
        import mlflow

        mlflow.log_metric(cfg.log_metric, score + 100)
        mlflow.log_metric(cfg.log_metric, score)
    if cfg.record:
        record(cfg, "end", started)
    if cfg.ret == "mapping":
        return {"loss": score, "acc": -score}
    if cfg.ret == "none":
        return None
    if cfg.ret == "nan_score":
        return float("nan")
    return score


if __name__ == "__main__":
    main()
