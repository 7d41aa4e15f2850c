"""The real third-party libraries whose DenseNet checkpoints densegui reads, where installed.

CI installs torchvision, timm and MONAI without their dependencies (README's test command):
torchvision's PyPI wheel is a CUDA build whose compiled operators do not load beside the CPU torch,
and its import then stops at registering fake kernels for ``torchvision::nms``/``qnms``. Defining
those two schemas first lets the pure-Python part (the model definitions, all these tests use)
import. Each function returns None where the library is not installed.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

_schemas = None  # the torch.library.Library defining the schemas (kept alive)


def _define_torchvision_schemas() -> None:
    global _schemas
    import torch

    if _schemas is None:
        _schemas = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            _schemas.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def torchvision_models() -> ModuleType | None:
    """``torchvision.models``, or None."""
    if importlib.util.find_spec("torchvision") is None:
        return None
    try:
        return importlib.import_module("torchvision.models")
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # the half-finished import
    _define_torchvision_schemas()
    return importlib.import_module("torchvision.models")


def timm() -> ModuleType | None:
    """``timm`` (it imports torchvision), or None."""
    if importlib.util.find_spec("timm") is None or torchvision_models() is None:
        return None
    return importlib.import_module("timm")


def monai_nets() -> ModuleType | None:
    """``monai.networks.nets``, or None."""
    if importlib.util.find_spec("monai") is None:
        return None
    return importlib.import_module("monai.networks.nets")
