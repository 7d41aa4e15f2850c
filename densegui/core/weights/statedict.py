"""State-dict arithmetic: key names, and checks of weights against a configuration's plan.

Used by checkpoint loading, config inference, the model and the reuse metric.
Nothing here imports torch or NumPy at module level: tensors are only
inspected through their methods (``shape``, ``is_floating_point``, ``numpy``),
so the module, and :class:`CheckpointError`, load in the torch-free GUI process.
"""

from __future__ import annotations

import re
import sys
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from densegui.core.weights.reading import CheckpointError

if TYPE_CHECKING:
    from torch import Tensor

    from densegui.core.arch.densenet.config import DenseNetConfig

__all__ = ["PREFIXES", "CheckpointError", "as_numpy", "check_finite", "check_matches", "has_legacy_keys",
           "has_prefixes", "is_tensor", "normalize_state_dict", "rename_legacy_keys", "strip_prefixes"]

# torchvision's released ImageNet files use "denselayer1.norm.1.weight" for
# "denselayer1.norm1.weight" (likewise relu.1, conv.2, norm.2 ...).
# num_batches_tracked too: files whose counters were renamed along with the rest exist.
_LEGACY_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                         r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")
# Prefixes added by DataParallel/DDP (``module.``), torch.compile (``_orig_mod.``).
PREFIXES = ("module.", "_orig_mod.")


def is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")  # no tensor can exist before torch is imported
    return torch is not None and isinstance(value, torch.Tensor)


def rename_legacy_keys(state_dict: Mapping[str, Tensor]) -> OrderedDict[str, Tensor]:
    """Rename old-style torchvision keys (``norm.1`` → ``norm1``), keeping order."""
    out: OrderedDict[str, Tensor] = OrderedDict()
    for key, value in state_dict.items():
        m = _LEGACY_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:  # keep BatchNorm's version info, as torchvision's in-place renaming does
        out._metadata = metadata  # type: ignore[attr-defined]
    return out


def strip_prefixes(key: str) -> str:
    """``key`` without any leading ``module.``/``_orig_mod.`` (repeated or mixed)."""
    while True:
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        else:
            return key


def has_prefixes(keys: Iterable[str]) -> bool:
    return any(k.startswith(PREFIXES) for k in keys)


def has_legacy_keys(keys: Iterable[str]) -> bool:
    return any(_LEGACY_KEY.match(k) for k in keys)


def normalize_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip ``module.``/``_orig_mod.`` prefixes and rename torchvision's legacy keys."""
    return dict(rename_legacy_keys({strip_prefixes(k): v for k, v in state_dict.items()}))


def as_numpy(value: Tensor) -> Any:
    """A NumPy view of a CPU tensor (float32 copy for dtypes NumPy lacks, e.g. bfloat16).

    The checks and the reuse metric use NumPy on purpose: it runs single-threaded, while hundreds
    of small PyTorch ops each open an OpenMP parallel region that, on a machine whose cores are
    busy with other work, can wait milliseconds for its second thread.
    """
    t = value.detach().cpu()
    try:
        return t.numpy()
    except TypeError:  # bfloat16, float8 …: no NumPy dtype
        return t.float().numpy()


def check_finite(state_dict: Mapping[str, Tensor]) -> None:
    """CheckpointError naming the first floating tensor with NaN or infinite values."""
    import numpy as np

    for key, value in state_dict.items():
        if value.is_floating_point() and value.numel():
            array = as_numpy(value)
            if not np.isfinite(array).all():
                what = "NaN" if np.isnan(array).any() else "infinite"
                raise CheckpointError(f"tensor {key!r} contains {what} values; the weights are unusable.")


def check_matches(state_dict: Mapping[str, Tensor], config: DenseNetConfig,
                  why: str = "the weights are inconsistent", *, names: Mapping[str, str] | None = None,
                  optional: tuple[str, ...] = ()) -> None:
    """CheckpointError unless ``state_dict`` loads into ``build_model(config)`` with ``strict=True``.

    Compares names and shapes with the plan's (:func:`densegui.core.arch.registry.expected_shapes`). BatchNorm's
    ``num_batches_tracked`` may be absent (torchvision's released files lack
    it; PyTorch fills it in), and so may keys starting with one of ``optional``.
    ``names`` maps module paths to the ones the file uses, for the messages.
    """
    def shown(key: str) -> str:
        module, _, param = key.rpartition(".")
        original = (names or {}).get(module)
        return repr(key) if original is None else repr(f"{original}.{param}" if original else param)

    from densegui.core.arch.registry import expected_shapes, family_of

    expected = expected_shapes(config)
    title = family_of(config).title
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")
               and not k.startswith(optional)]
    unexpected = [k for k in state_dict if k not in expected]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise CheckpointError(f"the {title} weights are incomplete: tensor {shown(missing[0])}{more} missing.")
    if unexpected:
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        raise CheckpointError(f"unexpected tensor {shown(unexpected[0])}{more} for this {title} configuration.")
    for key, shape in expected.items():
        if key in state_dict and tuple(state_dict[key].shape) != shape:
            got = "×".join(map(str, state_dict[key].shape)) or "scalar"
            raise CheckpointError(
                f"tensor {shown(key)} has shape {got}, expected {'×'.join(map(str, shape)) or 'scalar'}; {why}.")
