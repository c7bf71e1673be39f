"""A job that does nothing but return a score: the sweep's own cost is all that is left.

``+record=<file>`` makes each job append one line (``x``, pid, end time) to that
file, the app's own record of what ran (``bench_scale.py`` counts it).
"""

import json
import os
import time

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg: DictConfig) -> float:
    if cfg.get("record"):
        line = json.dumps({"x": cfg.get("x"), "pid": os.getpid(), "end": time.time()})
        with open(cfg.record, "a") as out:
            out.write(line + "\n")
    return float(cfg.get("x", 0))


if __name__ == "__main__":
    main()
