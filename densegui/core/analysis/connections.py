"""How much of a block's dense pattern a configuration keeps (torch-free): the figures a sweep of a
``spec`` field (DenseNet connectivity) reports and plots against."""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from dataclasses import is_dataclass
from typing import Any

from densegui.core.arch import registry as arch
from densegui.core.arch.graph import backprop_distance


def _links(plan) -> int:
    """Feature maps the plan's layers inside their blocks or stages concatenate (a transition or
    head that reads a whole block is not counted)."""
    return sum(len(u.sources) for u in plan.units if u.index is not None)


def fraction_kept(cfg) -> float | None:
    """The share of the connections into the layers that ``cfg`` keeps, against the same
    configuration with its family's "spec" fields at their defaults (the paper's dense pattern),
    from the two plans; None where the layers concatenate nothing (plain residual stages)."""
    family = arch.family_of(cfg)
    specs = {f.name for f in family.fields if f.kind == "spec"}
    defaults = {f.name: f.default for f in dataclass_fields(cfg) if f.name in specs} if is_dataclass(cfg) else {}
    reference = cfg.replace(**defaults) if any(getattr(cfg, n) != v for n, v in defaults.items()) else cfg
    whole = _links(arch.plan(reference))
    return _links(arch.plan(cfg)) / whole if whole else None


def connection_figures(cfg) -> dict[str, Any]:
    """:func:`fraction_kept` and ``backprop_distance``, the most layers a gradient crosses between
    two feature maps of a block (None: the layers concatenate nothing): the configuration's own
    ``backprop_distance()`` where its class has one (cached per block), else from the plan."""
    own = getattr(cfg, "backprop_distance", None)
    distance = own() if callable(own) else backprop_distance(arch.plan(cfg))
    return {"fraction_kept": fraction_kept(cfg), "backprop_distance": None if distance is None else int(distance)}
