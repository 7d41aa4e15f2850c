"""torchinfo wrapper: the layer-by-layer table of a real forward pass.

Two torchinfo 1.8 pitfalls are handled here: the device is always passed
explicitly (otherwise torchinfo moves the model to CUDA in place), and its
forward-pass cache is cleared after every call (otherwise it keeps the last
model alive). The default device is ``meta``: shapes, parameters and MACs
without allocating a single activation, fast enough for live rebuilds.
"""

from __future__ import annotations

import importlib
import re
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING

from densegui.core.arch.registry import Config, build_model, family_of, plan

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from densegui.core.arch.family import Family

# torch, torchinfo and the model are imported inside the functions: the GUI process unpickles
# SummaryResult without importing torch (docs/architecture.md).

COLUMNS = ("input_size", "output_size", "num_params", "mult_adds")


@dataclass(frozen=True)
class SummaryRow:
    name: str  # dotted module path ("features.denseblock1.denselayer1.conv1")
    class_name: str
    depth: int
    input_size: tuple[int, ...]
    output_size: tuple[int, ...]
    params: int  # parameters owned by the module itself and its children
    macs: int


@dataclass(frozen=True)
class SummaryResult:
    config: Config  # any family
    depth: int
    text: str
    rows: tuple[SummaryRow, ...]  # the rows of ``text``: modules down to ``depth``
    total_params: int
    total_macs: int
    # Per line of ``text`` (``text.splitlines()``): the module path of a layer row ("" elsewhere and
    # for the root), and the plan unit that row belongs to ("" for none); for linked selection.
    line_paths: tuple[str, ...] = ()
    line_units: tuple[str, ...] = ()
    units: tuple[str, ...] = ()  # every plan unit's path, also those deeper than ``depth``


_UNITS = {"KILOBYTES": "K", "MEGABYTES": "M", "GIGABYTES": "G", "TERABYTES": "T"}


def _fix_units(text: str) -> str:
    """torchinfo 1.8 on Python ≥ 3.11 prints "Total mult-adds (Units.MEGABYTES)"; show "(M)"."""
    return re.sub(r"\(Units\.([A-Z]+)\)", lambda m: f"({_UNITS.get(m.group(1), m.group(1))})", text)


def _clear_cache() -> None:
    # torchinfo 1.8 keeps the last forward pass (and so the model) alive.
    import torchinfo.torchinfo

    torchinfo.torchinfo.clear_cached_forward_pass()


def _batchnorm_shape_only(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.empty(x.shape, dtype=x.dtype, device=x.device)  # (empty_like goes through torch._refs)


def _concat_shape_only(tensors, dim: int):
    import torch

    shape = list(tensors[0].shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return torch.empty(shape, dtype=tensors[0].dtype, device=tensors[0].device)


def _add_shape_only(out, _identity):
    return out  # (a residual add keeps its first operand's shape)


def _linear_shape_only(module, x):
    import torch

    return torch.empty(*x.shape[:-1], module.out_features, dtype=x.dtype, device=x.device)


def _window_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil: bool = False) -> int:
    """Output length of a convolution or pooling window along one axis (PyTorch's formula)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and (out - 1) * stride >= size + padding:  # the last window must start inside the input
        out -= 1
    return out


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _spatial_shape_only(module, x):
    """A Conv2d, MaxPool2d or AvgPool2d of a meta model: only the output's shape."""
    import torch

    k, s, p = _pair(module.kernel_size), _pair(module.stride or module.kernel_size), _pair(module.padding)
    d = _pair(getattr(module, "dilation", 1))
    ceil = bool(getattr(module, "ceil_mode", False))
    h, w = (_window_out(x.shape[2 + i], k[i], s[i], p[i], d[i], ceil) for i in range(2))
    channels = module.out_channels if isinstance(module, torch.nn.Conv2d) else x.shape[1]
    return torch.empty(x.shape[0], channels, h, w, dtype=x.dtype, device=x.device)


def _plain_window(module) -> bool:
    """A 2-D convolution or pooling whose output shape ``_spatial_shape_only`` computes."""
    import torch

    if isinstance(module, torch.nn.Conv2d):
        return not isinstance(module.padding, str)
    return isinstance(module, (torch.nn.MaxPool2d, torch.nn.AvgPool2d))


def _global_pool_shape_only(x, *_args):
    import torch

    return torch.empty(*x.shape[:2], 1, 1, dtype=x.dtype, device=x.device)


# The shape-only ops a family's ``shape_only`` hook may name (or it gives its own function).
SHAPE_ONLY_OPS = {"cat": _concat_shape_only, "add": _add_shape_only, "global_pool": _global_pool_shape_only}


def _family_ops(model: torch.nn.Module, family: Family) -> None:
    """Apply the patches the family's ``shape_only`` hook yields: (module, attribute, op), op a name
    of :data:`SHAPE_ONLY_OPS` or the function to set."""
    if family.shape_only is None:
        return
    module_name, _, function = family.shape_only.partition(":")
    for module, attribute, op in getattr(importlib.import_module(module_name), function)(model):
        setattr(module, attribute, SHAPE_ONLY_OPS[op] if isinstance(op, str) else op)


def _shape_only_meta(model: torch.nn.Module, family: Family) -> None:
    """Make every op of a *meta* model that PyTorch runs through Python decompositions or meta
    functions return an empty tensor of the right shape: torch's BatchNorm, convolutions, poolings,
    global average pooling and linear layers, and the family's own ops (its ``shape_only`` hook:
    concatenations, residual adds, …).

    On the meta device those ops go through ``torch._decomp`` / ``torch._refs``, which are slow and
    whose first use imports ``torch._dynamo``; the first meta convolution's shape checks import
    SymPy. A meta summary records only the outputs' shapes and dtypes; parameters and MACs come from
    the modules. ``tests/core/analysis/test_summary.py`` checks the table against the same summary
    on the CPU.
    """
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.forward = types.MethodType(_batchnorm_shape_only, m)
        elif _plain_window(m):
            m.forward = types.MethodType(_spatial_shape_only, m)
        elif isinstance(m, torch.nn.Linear):
            m.forward = types.MethodType(_linear_shape_only, m)
        elif isinstance(m, torch.nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1)):
            m.forward = _global_pool_shape_only
    _family_ops(model, family)


def _list_inputs_in_full(summary_list, names: dict[int, str], cfg: Config) -> None:
    """torchinfo shows only the first tensor of a list input; a unit that concatenates its sources
    (a dense layer) reads all of them: the plan's input channels."""
    concatenating = {u.path: u.in_channels for u in plan(cfg).units if u.sources}
    for info in summary_list:
        channels = concatenating.get(names.get(info.layer_id))
        if channels is not None and len(info.input_size or ()) == 4:
            n, _, h, w = info.input_size
            info.input_size = [n, channels, h, w]


def unit_of(path: str, units: set[str], owners: dict[str, str]) -> str:
    """The plan unit module ``path`` belongs to: the deepest of it and its ancestors that is a unit
    path, else the unit that owns its state-dict entries (a ResNet's ``bn1`` is in the ``conv1``
    stem); "" for none (the root, a container of several units, a stem's ReLU)."""
    probe = path
    while probe:
        if probe in units:
            return probe
        probe = probe.rpartition(".")[0]
    return owners.get(path, "")


def line_paths(text: str, rows: tuple[SummaryRow, ...], units) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(module path, unit path) per line of ``text``: torchinfo prints one line per row, in order,
    between the 2nd and 3rd rule; ("", "") for every line when that does not hold. ``units``: the
    plan's."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"="}]
    paths = [""] * len(lines)
    if len(rules) >= 3 and rules[2] - rules[1] - 1 == len(rows):
        for i, row in enumerate(rows):
            paths[rules[1] + 1 + i] = row.name
    unit_paths = {u.path for u in units}
    owners = {t.key.rpartition(".")[0]: u.path for u in units for t in u.tensors}
    return tuple(paths), tuple(unit_of(p, unit_paths, owners) if p else "" for p in paths)


def summarize(config: Config, depth: int = 3, device: str | torch.device = "meta", batch: int = 1) -> SummaryResult:
    """Run torchinfo on a model built from ``config`` (any family; validated first)."""
    import torch
    import torchinfo

    cfg = config.validate()
    model = build_model(cfg, "meta" if str(device) == "meta" else device).eval()
    if str(device) == "meta":
        _shape_only_meta(model, family_of(cfg))
    try:
        stats = torchinfo.summary(
            model,
            input_size=(batch, cfg.in_channels, cfg.input_size, cfg.input_size),
            device=torch.device(device),
            depth=depth,
            col_names=COLUMNS,
            row_settings=("var_names",),
            verbose=0,
            cache_forward_pass=False,
        )
        names = {id(m): n for n, m in model.named_modules()}
        _list_inputs_in_full(stats.summary_list, names, cfg)
        rows = tuple(
            SummaryRow(
                name=names.get(info.layer_id, info.var_name),
                class_name=info.class_name,
                depth=info.depth,
                input_size=tuple(info.input_size) if isinstance(info.input_size, (list, tuple)) else (),
                output_size=tuple(info.output_size) if isinstance(info.output_size, (list, tuple)) else (),
                params=int(info.num_params),
                macs=int(info.macs),
            )
            for info in stats.summary_list
            if info.depth <= depth  # the rows the text shows (torchinfo traces every depth)
        )
        text = _fix_units(str(stats))
        units = plan(cfg).units
        paths, line_units = line_paths(text, rows, units)
        return SummaryResult(cfg, depth, text, rows, int(stats.total_params), int(stats.total_mult_adds),
                             paths, line_units, tuple(u.path for u in units))
    finally:
        _clear_cache()
