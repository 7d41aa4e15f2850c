"""The parameterised layers models are built from, and a cheaper set for meta-device builds.

A module built on the meta device has no values to initialise, yet its constructor
still runs ``reset_parameters``: meta ``uniform_`` and friends go through PyTorch's
Python decompositions, ≈ 0.1 ms per layer, about a quarter of a densenet121 summary.
Inside :func:`meta_build` (per thread, so a real model built at the same time on
another thread is initialised as usual) :func:`layers` hands out subclasses that skip
it. They keep the class names (a torchinfo table reads ``Conv2d``) and are
``isinstance`` of the torch classes; once built, :func:`as_torch_classes` gives each module
torch's own class back, so no model, meta or real, keeps them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import torch
from torch import nn


def _uninitialised(cls: type[nn.Module]) -> type[nn.Module]:
    def reset_parameters(self) -> None:  # meta tensors hold no values
        pass

    return type(cls.__name__, (cls,), {"reset_parameters": reset_parameters, "__module__": cls.__module__,
                                       "__qualname__": cls.__qualname__})


_META = SimpleNamespace(Conv2d=_uninitialised(nn.Conv2d), BatchNorm2d=_uninitialised(nn.BatchNorm2d),
                        Linear=_uninitialised(nn.Linear))
_state = threading.local()


def layers() -> SimpleNamespace | object:
    """``Conv2d``, ``BatchNorm2d`` and ``Linear``: torch's, or inside :func:`meta_build` on this
    thread, ones that skip initialisation."""
    return _META if getattr(_state, "meta", False) else nn


@contextmanager
def meta_build() -> Iterator[None]:
    """Build on the meta device (``torch.device("meta")``) without initialising parameters.
    Built modules are given torch's own classes back with :func:`as_torch_classes`."""
    saved = getattr(_state, "meta", False)
    _state.meta = True
    try:
        with torch.device("meta"):
            yield
    finally:
        _state.meta = saved


_TORCH_CLASS = {cls: cls.__base__ for cls in vars(_META).values()}


def build_on(factory, device: torch.device | str | None = None) -> nn.Module:
    """``factory()`` built on ``device``: on ``"meta"`` inside :func:`meta_build` (no memory, no
    initialisation), elsewhere built on the CPU and moved (``None``: left on the CPU)."""
    if device is not None and str(device) == "meta":
        with meta_build():
            return as_torch_classes(factory())
    model = factory()
    return model.to(device) if device is not None else model


def as_torch_classes(model: nn.Module) -> nn.Module:
    """``model`` with every uninitialised layer turned back into torch's class (in place): a meta
    model can then be pickled, and ``to_empty()`` + ``reset_parameters()`` initialise it as usual."""
    for m in model.modules():
        base = _TORCH_CLASS.get(type(m))
        if base is not None:
            m.__class__ = base
    return model
