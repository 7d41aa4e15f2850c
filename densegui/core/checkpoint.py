"""densegui's checkpoint format (writing side).

A densegui checkpoint is a ``torch.save`` file of one plain dict that
``torch.load(..., weights_only=True)`` can read back, never arbitrary objects::

    {
      "format": "densegui-checkpoint", "version": 1,
      "config": DenseNetConfig.to_dict(),
      "state_dict": {name: tensor, ...},        # CPU tensors, torchvision names
      "metadata": {...},                         # JSON-like: dataset, accuracy, seed, versions, date
      "train_state": {...},                      # optional: what `densegui train --resume` needs
    }

Files are written atomically (temporary file in the same folder + rename), so
a crash never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from densegui.core.config import DenseNetConfig

FORMAT = "densegui-checkpoint"
VERSION = 1


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file next to ``path``, then rename over it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def save_checkpoint(
    path: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    config: DenseNetConfig,
    metadata: Mapping[str, Any] | None = None,
    train_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a densegui checkpoint atomically; return its path."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "config": config.validate().to_dict(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
        "metadata": dict(metadata or {}),
    }
    if train_state is not None:
        payload["train_state"] = dict(train_state)
    return atomic_torch_save(payload, path)
