"""Loading any checkpoint: the networks a file holds, which one is shown, and its configuration.

Reading is :mod:`densegui.core.weights.reading` (safe: tensors and plain data only), the format
and writing :mod:`densegui.core.weights.files`, the architecture
:mod:`densegui.core.weights.infer` (DenseNets) and :mod:`densegui.core.weights.infer_rdnet`
(RDNets, timm's names). :func:`load_checkpoint` finds every such network anywhere in the file's
plain containers, picks one by :data:`CHOICE_RULE` (or by name), renames its tensors to the
model's names and works out its configuration (stored in the file, of any family, else inferred).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.arch.registry import config_from_dict, family_of
from densegui.core.weights import infer_rdnet
from densegui.core.errors import ConfigError, DenseguiError
from densegui.core.weights.files import (
    FORMAT,
    SAFETENSORS_CONFIG_KEY,
    read_torch_file,
    remove_stale_temporaries,
    save_checkpoint,
    save_safetensors,
)
from densegui.core.weights.infer import (
    InferenceError,
    Layout,
    NotADenseNet,
    find_networks,
    infer_config,
)
from densegui.core.weights.reading import (
    CheckpointError,
    display_name,
    read_safetensors,
    readable_kind,
    torch_load,
)
from densegui.core.weights.statedict import (
    check_finite,
    check_matches,
    has_legacy_keys,
    has_prefixes,
    is_tensor,
    normalize_state_dict,
)

if TYPE_CHECKING:
    import torch

# (the writing side is re-exported: one import for whoever reads and writes checkpoints)
__all__ = ["CHOICE_RULE", "FORMAT", "Candidate", "CheckpointError", "LoadedCheckpoint", "choose_candidate",
           "find_candidates", "load_checkpoint", "read_torch_file", "remove_stale_temporaries", "save_checkpoint",
           "save_safetensors"]

# ------------------------------------------------------------------ the networks in a loaded file
# How load_checkpoint picks among several networks in one file (model and EMA copy, …).
CHOICE_RULE = "the trained weights before EMA copies, then the least nested, then the first in the file"
_EMA = re.compile(r"(?:^|[^a-z])ema(?:[^a-z]|$)", re.IGNORECASE)


@dataclass
class Candidate:
    """One network (DenseNet, RDNet) in a file: its name (the keys leading to its state_dict, then its prefix:
    ``"state_dict/model"``), that state_dict and its :class:`Layout` (None: densegui's own names)."""

    name: str
    tensors: Mapping[str, torch.Tensor]
    layout: Layout | None
    depth: int = 0
    order: int = 0


def _tensor_mappings(obj: Any, path: tuple[str, ...] = (), depth: int = 0) -> list[tuple[tuple[str, ...], dict]]:
    """Every mapping in ``obj`` holding tensors under string keys, with the keys leading to it."""
    found = []
    if isinstance(obj, Mapping):
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and is_tensor(v)}
        if tensors:
            found.append((path, tensors))
        items: Any = obj.items()
    elif isinstance(obj, (list, tuple)) and len(obj) <= 10_000:
        items = enumerate(obj)
    else:
        return found
    if depth < 6:
        for key, value in items:
            if isinstance(value, (Mapping, list, tuple)):
                found += _tensor_mappings(value, (*path, str(key)), depth + 1)
    return found


def _what(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = ", ".join(map(repr, list(obj)[:4])) + (", …" if len(obj) > 4 else "")
        return f"a {type(obj).__name__} with keys {keys}" if obj else f"an empty {type(obj).__name__}"
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {len(obj)} items ({sum(is_tensor(v) for v in obj)} tensors)"
    return f"a {type(obj).__name__}"


def find_networks_any(tensors: Mapping[str, torch.Tensor]) -> list[Layout]:
    """The networks in one state_dict: RDNets where timm's block names are, else DenseNets."""
    if infer_rdnet.has_rdnet(tensors):
        return infer_rdnet.find_networks(tensors)
    return find_networks(tensors)


def infer_any(state: Mapping[str, torch.Tensor]) -> Any:
    """:func:`infer_config` of the family whose names ``state`` uses."""
    return infer_rdnet.infer_config(state) if infer_rdnet.has_rdnet(state) else infer_config(state)


def find_candidates(obj: Any, name: str) -> list[Candidate]:
    """The networks anywhere in a loaded object (nested dicts and lists), ordered by
    :data:`CHOICE_RULE`; CheckpointError (one line, prefixed with the file ``name``) if none."""
    found: list[Candidate] = []
    damaged: list[InferenceError] = []  # DenseNets with a missing or misshapen tensor
    absent: list[NotADenseNet] = []
    mappings = _tensor_mappings(obj)
    for path, tensors in mappings:
        try:
            layouts = find_networks_any(tensors)
        except NotADenseNet as exc:
            absent.append(exc)
            continue
        except InferenceError as exc:
            damaged.append(exc)
            continue
        for layout in layouts:
            parts = [*path, layout.root] if layout.root else list(path)
            depth = len(path) + (layout.root.count(".") + 1 if layout.root else 0)
            found.append(Candidate("/".join(parts), tensors, layout, depth, len(found)))
    if not found:
        if not mappings:
            raise CheckpointError(f"{name!r} holds no state_dict: found {_what(obj)}; needed a mapping of names to "
                                  "tensors (a state_dict), alone or inside a dict.")
        raise CheckpointError(f"{name}: {(damaged or absent)[0]}")
    return sorted(found, key=lambda c: (bool(_EMA.search(c.name)), c.depth, c.order))


def choose_candidate(found: list[Candidate], candidate: str | None, name: str) -> Candidate:
    """``found[0]``, or the one named ``candidate``; CheckpointError listing the names if none is."""
    if candidate is None:
        return found[0]
    for c in found:
        if c.name == candidate:
            return c
    names = ", ".join(repr(c.name) for c in found)
    raise CheckpointError(f"{name!r} holds no DenseNet {candidate!r}; it holds {names}.")


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` returns.

    ``state_dict`` has torchvision's key names (whatever names the file used) and, unless
    ``notes`` says a part was not recognised, loads into ``build_model(config)`` with
    ``strict=True``. ``inferred`` is True when ``config`` was inferred from the weights rather
    than read from the file. ``candidate`` names the DenseNet these weights are when the file
    holds several (``candidates``, in the order of :data:`CHOICE_RULE`) or wraps one
    (``"state_dict/model"``: under the key ``state_dict``, keys prefixed ``model.``).
    """

    config: Any  # the configuration of its family (DenseNetConfig, RDNetConfig …)
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    source_format: str = ""
    inferred: bool = False
    path: str = ""
    candidate: str = ""
    candidates: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for the user: the file, its format, the configuration and, where the
        metadata says, what it was trained on and how well; which DenseNet of the file it is,
        and what was not recognised."""
        cfg = self.config
        name = Path(self.path).name if self.path else "checkpoint"
        origin = "inferred from the weights" if self.inferred else "stored in the file"
        text = (f"{name}{f' ({self.source_format})' if self.source_format else ''} — configuration {origin}: "
                f"{_words(cfg)}.")
        training = self._training()
        if training:
            text += f" {training[0].upper()}{training[1:]}."
        others = [c for c in self.candidates if c != self.candidate]
        if others:
            why = f"chosen by the rule: {CHOICE_RULE}" if self.candidate == self.candidates[0] else "as asked"
            text += (f" The file holds {len(self.candidates)} {family_of(cfg).title}s: "
                     f"shown {self.candidate!r} ({why}); "
                     f"also {', '.join(map(repr, others))}.")
        return text + "".join(f" {note[0].upper()}{note[1:]}." for note in self.notes)

    def _training(self) -> str:
        meta = self.metadata or {}
        shown = []
        dataset = meta.get("dataset")
        if isinstance(dataset, Mapping):
            dataset = dataset.get("name")
        if isinstance(dataset, str):
            shown.append(f"trained on {dataset}")
        for key in ("heldout_accuracy", "test_accuracy", "val_accuracy", "accuracy"):
            value = meta.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                label = {"heldout_accuracy": "held-out accuracy"}.get(key, key.replace("_", " "))
                shown.append(f"{label} {value:.2%}" if value <= 1 else f"{label} {value:g}")
                break
        if isinstance(meta.get("epochs"), int) and not isinstance(meta.get("epochs"), bool):
            shown.append(f"{meta['epochs']} epochs")
        return ", ".join(shown)



def _words(cfg: Any) -> str:
    """The configuration for :meth:`LoadedCheckpoint.describe` (a DenseNet's in the words its tests know)."""
    if cfg.family != DenseNetConfig.family:
        return cfg.describe()
    layers = f"bottleneck (bn_size {cfg.bn_size})" if cfg.bottleneck else "basic layers"
    channels = "1 input channel" if cfg.in_channels == 1 else f"{cfg.in_channels} input channels"
    classes = "1 class" if cfg.num_classes == 1 else f"{cfg.num_classes} classes"
    return (f"k={cfg.growth_rate}, blocks {'-'.join(map(str, cfg.block_depths))}, {layers}, "
            f"θ={cfg.compression:g}, {cfg.stem} stem with {cfg.num_init_features} features, "
            f"{channels}, {classes}, input {cfg.input_size}×{cfg.input_size}")


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and is_tensor(v) for k, v in obj.items())


def _stored_config(data: Any, name: str) -> Any:
    if data is None:
        return None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            raise CheckpointError(f"{name!r}: its stored configuration is not valid JSON.") from None
    if not isinstance(data, Mapping):
        return None
    try:
        return config_from_dict(dict(data))  # (any family: its "family" key, else its fields)
    except ConfigError as exc:
        raise CheckpointError(f"{name!r}: its stored configuration is invalid: {exc}") from None
    except TypeError:
        raise CheckpointError(f"{name!r}: its stored configuration is invalid.") from None


def _plain(value: Any) -> Any:
    """Metadata as JSON-friendly values (tensors become numbers or shapes)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if is_tensor(value):
        return value.item() if value.numel() == 1 else f"tensor{list(value.shape)}"
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "size", 2) == 1:
        return _plain(value.item())  # NumPy scalar or one-element array
    if hasattr(value, "tolist") and hasattr(value, "shape"):
        return value.tolist() if getattr(value, "size", 0) <= 64 else f"array{list(value.shape)}"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _is_structure(value: Any) -> bool:
    """Nested data (an optimizer state, hyper-parameters, an ``args`` Namespace): not shown as metadata."""
    return (isinstance(value, Mapping) or hasattr(value, "__dict__") and not hasattr(value, "dtype")
            or isinstance(value, (list, tuple)) and any(isinstance(v, (Mapping, list, tuple)) for v in value))


def load_checkpoint(path: str | Path, candidate: str | None = None) -> LoadedCheckpoint:
    """Read a checkpoint safely and work out its configuration.

    Accepts densegui checkpoints (of any family: the configuration they store), ``.safetensors``
    files and any torch file holding a DenseNet or an RDNet (timm's names) state_dict anywhere
    inside plain containers: alone, in a training checkpoint (timm, PyTorch
    Lightning, torchvision's references …), with EMA copies, under any prefix, with torchvision's,
    timm's, MONAI's or other names. ``candidate`` picks one DenseNet of a file that holds
    several (see :attr:`LoadedCheckpoint.candidates`; the default follows :data:`CHOICE_RULE`).
    Raises :class:`CheckpointError` (one line) for anything else.
    """
    p = Path(path)
    name = display_name(p)
    if not p.exists():
        raise CheckpointError(f"checkpoint {str(p)!r} does not exist.")
    if p.is_dir():
        raise CheckpointError(f"{str(p)!r} is a directory, not a checkpoint file.")
    kind = readable_kind(p)
    if kind == "unknown" and p.suffix.lower() != ".safetensors":
        raise CheckpointError(f"{name!r} is neither a PyTorch checkpoint nor a safetensors file.")

    stored_cfg_data: Any = None
    metadata: dict[str, Any] = {}
    if kind == "safetensors" or p.suffix.lower() == ".safetensors":
        obj, st_meta = read_safetensors(p)
        source_format = "safetensors"
        stored_cfg_data = st_meta.pop(SAFETENSORS_CONFIG_KEY, None)
        for k, v in st_meta.items():
            try:
                metadata[k] = json.loads(v)
            except (json.JSONDecodeError, TypeError):
                metadata[k] = v
        if not obj:
            raise CheckpointError(f"{name!r} holds no tensors.")
    else:
        obj = torch_load(p, kind, mmap=True)
        if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
            source_format = "densegui"
            stored_cfg_data = obj.get("config")
            metadata = _plain(obj.get("metadata") or {})
            if not _is_tensor_dict(obj.get("state_dict")):
                raise CheckpointError(f"{name!r} is a densegui checkpoint without weights (no state_dict).")
        else:
            source_format = "state_dict"
            if isinstance(obj, Mapping):
                cfg_candidate = obj.get("config")
                if isinstance(cfg_candidate, Mapping) and any(_is_tensor_dict(v) for v in obj.values()):
                    try:  # a densegui-style config next to the weights; some other project's: infer instead
                        stored_cfg_data = config_from_dict(dict(cfg_candidate)).to_dict()
                    except (ConfigError, TypeError):
                        stored_cfg_data = None
                metadata = {str(k): _plain(v) for k, v in obj.items()
                            if k not in ("config", "train_state") and not is_tensor(v) and not _is_structure(v)}

    if source_format == "densegui":
        found = [Candidate("state_dict", obj["state_dict"], None)]
    else:
        found = find_candidates(obj, name)
    chosen = choose_candidate(found, candidate, name)
    stored = _stored_config(stored_cfg_data, name)
    raw_keys = list(chosen.tensors)
    try:
        if chosen.layout is None:  # densegui's own names
            state = normalize_state_dict(chosen.tensors)
        else:
            state = chosen.layout.rename(chosen.tensors)
        if stored is not None and not (chosen.layout and chosen.layout.unrecognised):
            config, inferred = stored, False
            check_matches(state, config, "they do not match the configuration stored in the file")
        elif chosen.layout is None:
            config, inferred = infer_any(state), True
        else:
            config, inferred = chosen.layout.config, True
        check_finite(state)
    except DenseguiError as exc:
        raise type(exc)(f"{name}: {exc}") from None
    if source_format == "state_dict" and chosen.name:
        rooted = chosen.layout is not None and chosen.layout.root
        where, _, prefix = chosen.name.rpartition("/") if rooted else (chosen.name, "", "")
        source_format = f"state_dict under {where!r}" if where else source_format
        if prefix:
            source_format += f", prefix {prefix + '.'!r} stripped"
    elif has_prefixes(raw_keys):
        source_format += ", 'module.' prefix stripped"
    if has_legacy_keys(raw_keys):
        source_format += ", legacy torchvision keys"
    notes = tuple(chosen.layout.notes) if chosen.layout else ()
    return LoadedCheckpoint(config=config, state_dict=state, metadata=metadata, source_format=source_format,
                            inferred=inferred, path=str(p), candidate=chosen.name,
                            candidates=tuple(c.name for c in found), notes=notes)

