"""A sweep's default study name: what is swept, then a digest of its definition.

Pure. The name reads as the job, the mode and the swept keys in argument order
(``train-chain-model-lr-1a51d027``), cut to :data:`MAX_LENGTH` characters; the
digest keeps it unique and stable, so that rerunning the same command finds the
same study. The previous release named studies ``<job>-ivory-<digest>`` with the
same digest: :func:`previous_study_name` gives that name, so that its studies
still resume.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

#: The longest default study name (optuna-dashboard shows about this much).
MAX_LENGTH = 64
DIGEST_LENGTH = 8


def definition_digest(identity: Mapping[str, Any]) -> str:
    """A short digest of what identifies a sweep (its order of keys does not matter).

    >>> definition_digest({"mode": "product", "params": {"lr": ["0.1"]}})
    '251b06ee'
    >>> definition_digest({"params": {"lr": ["0.1"]}, "mode": "product"})
    '251b06ee'
    """
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:DIGEST_LENGTH]


def study_name(job_name: str, mode: str, keys: Sequence[str], digest: str) -> str:
    """The default study name: job, mode, swept keys (``+``/``~`` dropped), digest.

    Keys that do not fit in :data:`MAX_LENGTH` are counted instead (``+3``); a very
    long job name is cut.

    >>> study_name("train", "chain", ["model", "lr"], "1a51d027")
    'train-chain-model-lr-1a51d027'
    >>> study_name("train", "optimize", ["+x", "~y"], "1a51d027")
    'train-optimize-x-y-1a51d027'
    >>> study_name("train", "product", [], "1a51d027")
    'train-product-1a51d027'
    >>> name = study_name("train", "product", [f"param_{i}" for i in range(9)], "1a51d027")
    >>> name, len(name) <= MAX_LENGTH
    ('train-product-param_0-param_1-param_2-param_3-+5-1a51d027', True)
    >>> len(study_name("j" * 100, "chain", ["lr"], "1a51d027")) == MAX_LENGTH
    True
    """
    room = MAX_LENGTH - len(digest) - 1
    head = f"{job_name}-{mode}"[:room]
    names = [key.lstrip("+~") for key in keys]
    for shown in range(len(names), -1, -1):
        rest = len(names) - shown
        parts = [head, *names[:shown], *([f"+{rest}"] if rest else [])]
        if len("-".join(parts)) <= room:
            return "-".join([*parts, digest])
    return f"{head}-{digest}"  # a job name of the whole length: no key fits


def previous_study_name(job_name: str, digest: str) -> str:
    """The default study name of the previous release (ivory-hydra 0.2).

    >>> previous_study_name("train", "1a51d027")
    'train-ivory-1a51d027'
    """
    return f"{job_name}-ivory-{digest}"
