"""The design space, analytically: sweeps of one field and side-by-side comparisons (no torch).

A sweep takes a configuration of any family and one field to vary (:func:`parse_vary`:
``FIELD=START:STOP:STEP`` or ``FIELD=v1,v2,…``) and gives one row per value with the full
configuration it used, its parameters, MACs and training-activation memory (naive and
memory-efficient), all from the analytic layer table. A value that makes the configuration invalid
keeps its row, with the reason instead of the figures. A comparison gives the same row for named
presets or configurations, with their published results.

The fields come from each registered family (:func:`family_fields`): its ``int``, ``float``
and ``spec`` fields with ``sweep``, its per-unit depths as one axis for all of them (named by the
CLI flag, "blocks") and one per unit ("block3"), and its extra ``sweeps``; ``Family.sweep_axes``
orders them and words them where a field's help does not fit. A ``spec`` field's values are
strings (``connectivity=dense,log,window:2``), checked against its choices; their rows are
plotted against the fraction of the connections they keep (:func:`fraction_kept`).

Measured figures (latency, throughput, peak memory) come from the timing probe: :func:`measure` runs
it round-robin over the configurations, so that a slow spell of a shared machine hits them alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

from densegui.core.arch import registry as arch
from densegui.core.arch.family import MEMORY_EFFICIENT
from densegui.core.analysis.connections import connection_figures, fraction_kept  # noqa: F401 (re-exported)
from densegui.core.errors import ConfigError, DenseguiError

if TYPE_CHECKING:  # pragma: no cover
    from densegui.core.arch.family import Family
    from densegui.core.arch.family import Field as FamilyField

MAX_POINTS = 500
MAX_UNITS = 16  # one-depth fields "block1" … "block16" (the built-in families' most blocks or stages: RDNet's)


def _no_value(cfg: Any) -> None:
    return None


@dataclass(frozen=True)
class Field:
    name: str
    families: tuple[str, ...]  # the names of the registered families that have it
    description: str
    integer: bool
    apply: Callable[[Any, float], Any]  # (config, value) -> config (not validated)
    index: int | None = None  # 1-based block/stage of a one-depth field
    log: bool = False  # a range of it steps geometrically (growth rate, widths)
    value: Callable[[Any], Any] = _no_value  # the configuration's own value, or None
    spec: FamilyField | None = None  # a "spec" field: its values are strings, one of this field's choices


def _set(attr: str) -> Callable[[Any, float], Any]:
    return lambda cfg, v: cfg.replace(**{attr: v})


def _get(attr: str) -> Callable[[Any], Any]:
    return lambda cfg: getattr(cfg, attr, None)


def _one_depth(family: Family, index: int) -> Callable[[Any, float], Any]:
    def apply(cfg, v):
        depths = list(getattr(cfg, family.depths))
        if index >= len(depths):
            raise ConfigError(f"the configuration has {len(depths)} {family.words(plural=True)}, not {index + 1}.")
        depths[index] = v
        return cfg.replace(**{family.depths: tuple(depths)})
    return apply


def _depth_of(attr: str, index: int) -> Callable[[Any], Any]:
    return lambda cfg: getattr(cfg, attr)[index] if index < len(getattr(cfg, attr)) else None


def _all_depths(attr: str) -> Callable[[Any, float], Any]:
    return lambda cfg, v: cfg.replace(**{attr: (v,) * len(getattr(cfg, attr))})


def _common_depth(attr: str) -> Callable[[Any], Any]:
    return lambda cfg: getattr(cfg, attr)[0] if len(set(getattr(cfg, attr))) == 1 else None


def family_fields(family: Family) -> tuple[list[Field], list[Field]]:
    """``family``'s sweep fields (``families`` left empty): (those listed in ``sweep_axes`` in its
    order, then the others in field order, then the extra ``sweeps``; the one-depth fields)."""
    words = dict(family.sweep_axes)
    fields: dict[str, Field] = {}
    one_depth: list[Field] = []
    for f in family.fields:
        if not f.sweep:
            continue
        if f.kind in ("int", "float"):
            fields[f.dest] = Field(f.dest, (), words.get(f.dest) or f.help, f.kind == "int", _set(f.name), None,
                                   f.log, _get(f.name))
        elif f.kind == "spec":
            fields[f.dest] = Field(f.dest, (), words.get(f.dest) or f.help, False, _set(f.name), None, False,
                                   _get(f.name), f)
        elif f.kind == "depths" and f.name == family.depths:
            fields[f.dest] = Field(f.dest, (), words.get(f.dest) or f"every {family.unit}'s depth", True,
                                   _all_depths(f.name), None, f.log, _common_depth(f.name))
            each = words.get(f"{family.unit}{{i}}") or f"{family.unit} {{i}}'s depth"
            one_depth = [Field(f"{family.unit}{i}", (), each.format(i=i), True, _one_depth(family, i - 1), i, f.log,
                               _depth_of(f.name, i - 1)) for i in range(1, MAX_UNITS + 1)]
    for name, (description, log, apply, *value) in family.sweeps.items():
        fields[name] = Field(name, (), description, True, apply, None, log, *value)
    first = [fields[name] for name, _ in family.sweep_axes if name in fields]
    return first + [f for f in fields.values() if f not in first], one_depth


class _Tables(NamedTuple):
    families: tuple[Family, ...]
    by_family: dict[str, dict[str, Field]]  # family name → its fields by name
    fields: dict[str, Field]  # every field by name (the first family's that has it)
    aliases: dict[str, str]


_tables: _Tables | None = None


def _current() -> _Tables:
    """The sweep fields of the registered families (rebuilt when they change). All of them are
    listed as each family's own fields, then those every family has, then the one-depth fields."""
    global _tables
    fams = tuple(arch.families().values())
    if _tables is not None and len(_tables.families) == len(fams) and all(
            a is b for a, b in zip(_tables.families, fams)):
        return _tables
    per = {f.name: family_fields(f) for f in fams}
    owners: dict[str, tuple[str, ...]] = {}
    for fam, (fields, one_depth) in per.items():
        for f in fields + one_depth:
            owners[f.name] = (*owners.get(f.name, ()), fam)
    by_family = {fam: {f.name: replace(f, families=owners[f.name]) for f in fields + one_depth}
                 for fam, (fields, one_depth) in per.items()}
    shared = [f.name for f in per[fams[0].name][0] if len(owners[f.name]) == len(fams)] if fams else []
    listed = ([f.name for fields, _ in per.values() for f in fields if f.name not in shared] + shared
              + [f.name for _, one_depth in per.values() for f in one_depth])
    merged = {name: by_family[owners[name][0]][name] for name in dict.fromkeys(listed)}
    aliases: dict[str, str] = {}
    for fam in fams:
        for alias, name in fam.sweep_aliases.items():
            aliases.setdefault(alias, name)
    _tables = _Tables(fams, by_family, merged, aliases)
    return _tables


class _Live(Mapping):
    """A read-only view of one of :func:`_current`'s tables: it follows the registered families."""

    def __init__(self, table: str) -> None:
        self._table = table

    def _now(self) -> Mapping:
        return getattr(_current(), self._table)

    def __getitem__(self, key):
        return self._now()[key]

    def __iter__(self) -> Iterator:
        return iter(self._now())

    def __len__(self) -> int:
        return len(self._now())

    def __repr__(self) -> str:
        return repr(dict(self._now()))


FIELDS: Mapping[str, Field] = _Live("fields")  # every registered family's sweep fields by name
ALIASES: Mapping[str, str] = _Live("aliases")  # other names of fields ("k" → "growth_rate")


def _own_fields(cfg) -> tuple[Family, dict[str, Field]]:
    family = arch.family_of(cfg)
    return family, _current().by_family[family.name]


def field_names() -> str:
    """Every field's name, by commas, each run of one-depth fields as "block1…block16"."""
    runs: dict[str, list[str]] = {}
    for f in FIELDS.values():
        runs.setdefault(f.name.rstrip("0123456789") if f.index else f.name, []).append(f.name)
    return ", ".join(v[0] if len(v) == 1 else f"{v[0]}…{v[-1]}" for v in runs.values())


def fields_for(cfg) -> list[Field]:
    """The fields a sweep can vary for ``cfg``: its family's, one-depth fields only of the blocks
    or stages it has; in the order of :data:`FIELDS`."""
    family, own = _own_fields(cfg)
    count = len(getattr(cfg, family.depths, ()))
    return [f for name in FIELDS if (f := own.get(name)) is not None and (f.index is None or f.index <= count)]


def current_value(cfg, name: str) -> Any:
    """``cfg``'s own value of the sweep field ``name`` (where a plot marks it), or None."""
    field = _own_fields(cfg)[1].get(name)
    return field.value(cfg) if field is not None else None


@dataclass(frozen=True)
class Vary:
    field: str
    values: tuple[Any, ...]  # numbers, or the strings of a "spec" field


def _number(text: str, integer: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a number.") from None
    if not math.isfinite(value):
        raise ConfigError(f"{text!r} is not a finite number.")
    if integer:
        if value != int(value):
            raise ConfigError(f"{text!r} must be a whole number for this field.")
        return int(value)
    return value


def spec_value(field: Field, text: str) -> str:
    """One value of a "spec" field in its own spelling: one of the field's choices, or a choice
    ending in ":W" with a whole number W in the field's lo … hi ("Window:04" → "window:4");
    ConfigError (one line) for anything else. (The configuration still validates the result.)"""
    spec = field.spec
    assert spec is not None, field.name
    given = text.strip()
    head, sep, number = given.lower().partition(":")
    for choice in spec.choices:
        word, takes, letter = choice.partition(":")
        if head != word.lower():
            continue
        if not takes and not sep:
            return choice
        if takes:
            lo, hi = int(spec.lo if spec.lo is not None else 0), int(spec.hi if spec.hi is not None else 2**31 - 1)
            if sep and re.fullmatch(r"\d+", number.strip(), re.ASCII) and lo <= int(number) <= hi:
                return f"{word}:{int(number)}"
            raise ConfigError(f"{field.name} {choice} needs a whole number {letter} from {lo} to {hi}, "
                              f"got {given!r}.")
    raise ConfigError(f"{field.name} must be one of {', '.join(spec.choices)}, got {given!r}.")


def default_values(field: Field, count: int = 8) -> tuple[str, ...]:
    """The values a sweep of a "spec" field starts from: its plain choices, then each choice that
    takes a number with the first ``count`` numbers allowed (dense, log, window:1 … window:8)."""
    spec = field.spec
    assert spec is not None, field.name
    plain = [c for c in spec.choices if ":" not in c]
    lo = int(spec.lo if spec.lo is not None else 0)
    hi = int(spec.hi if spec.hi is not None else lo + count - 1)
    numbers = range(lo, min(hi, lo + count - 1) + 1)
    numbered = [f"{c.partition(':')[0]}:{n}" for c in spec.choices if ":" in c for n in numbers]
    return (*plain, *numbered)


def format_value(value: Any) -> str:
    """A sweep value for a table or a message: a spec as it is, a number with ``g``."""
    return value if isinstance(value, str) else f"{value:g}"


def parse_vary(text: str) -> Vary:
    """``FIELD=START:STOP:STEP`` (STOP included when the steps land on it) or ``FIELD=v1,v2,…``
    (a "spec" field: only the list, each value checked by :func:`spec_value`)."""
    name, sep, spec = text.partition("=")
    name = ALIASES.get(name.strip(), name.strip())
    if not sep or not spec.strip():
        raise ConfigError(f"--vary needs FIELD=START:STOP:STEP or FIELD=v1,v2,…, got {text!r}.")
    if name not in FIELDS:
        raise ConfigError(f"unknown field {name!r}; choose one of {field_names()} "
                          f"(aliases: {', '.join(ALIASES)}).")
    field = FIELDS[name]
    if field.spec is not None:  # (its values hold ":" themselves: no ranges)
        texts = [p for p in spec.split(",") if p.strip()]
        if not texts or len(texts) > MAX_POINTS:
            raise ConfigError(f"give 1 to {MAX_POINTS} values, got {len(texts)}.")
        return Vary(name, tuple(spec_value(field, p) for p in texts))
    if ":" in spec:
        parts = spec.split(":")
        if len(parts) != 3:
            raise ConfigError(f"a range is START:STOP:STEP, got {spec!r}.")
        start, stop, step = (_number(p, field.integer) for p in parts)
        if step <= 0 or stop < start:
            raise ConfigError(f"a range needs START ≤ STOP and STEP > 0, got {spec!r}.")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        if count > MAX_POINTS:
            raise ConfigError(f"{count} points; at most {MAX_POINTS} per sweep.")
        values = tuple(start + i * step if field.integer else round(start + i * step, 10) for i in range(count))
    else:
        values = tuple(_number(p.strip(), field.integer) for p in spec.split(",") if p.strip())
        if not values or len(values) > MAX_POINTS:
            raise ConfigError(f"give 1 to {MAX_POINTS} values, got {len(values)}.")
    return Vary(name, values)


def sweep_x(cfg, name: str) -> float | None:
    """Where ``cfg`` sits on the x axis of a sweep of ``name``: its own value, or for a "spec"
    field the fraction of the connections it keeps (None: not on the axis)."""
    field = _own_fields(cfg)[1].get(name)
    if field is None:
        return None
    if field.spec is not None:
        try:
            return fraction_kept(cfg)
        except DenseguiError:  # (an invalid configuration is not on the axis)
            return None
    return field.value(cfg)


def row(cfg, name: str | None = None) -> dict[str, Any]:
    """The analytic figures of one validated configuration (the ``summary --json`` fields), with
    its :func:`connection_figures`."""
    table = arch.layer_table(cfg)
    preset = name if name is not None else arch.preset_of(cfg)
    published = arch.PRESETS[preset].published if preset in arch.PRESETS else ()
    family = arch.family_of(cfg)
    return {
        "name": preset or cfg.label(),
        "family": family.name,
        "config": cfg.to_dict(),
        "params": table.params,
        "macs": table.macs,
        # (efficient_bytes is null for a family without a memory-efficient mode, as in summary --json)
        "memory": {"naive_bytes": table.naive_bytes,
                   "efficient_bytes": table.efficient_bytes if family.can(MEMORY_EFFICIENT) else None,
                   "convention": "float32 bytes autograd saves for backward, per image"},
        **connection_figures(cfg),
        "published": [{"dataset": p.dataset, "metric": p.metric, "value": p.value, "source": p.source}
                      for p in published],
    }


def sweep_rows(cfg, vary: Vary) -> list[dict[str, Any]]:
    """One row per value of ``vary`` applied to ``cfg``: ``value``, ``config`` and the figures of
    :func:`row`, or ``error`` (one line) where the value makes the configuration invalid."""
    family, own = _own_fields(cfg)
    field = own.get(vary.field)
    if field is None:
        owners = FIELDS[vary.field].families
        raise ConfigError(f"{vary.field} is a {' or '.join(owners)} field; this configuration is a {family.name}.")
    rows = []
    for value in vary.values:
        try:  # (row() validates, through the layer table)
            rows.append({"value": value, **row(field.apply(cfg, value))})
        except (DenseguiError, TypeError, ValueError) as exc:
            rows.append({"value": value, "config": None, "error": str(exc)})
    return rows


def compare_rows(items: Sequence[str]) -> list[dict[str, Any]]:
    """A row per preset name or configuration file (a ``.json`` path)."""
    rows = []
    for item in items:
        if item.endswith(".json"):
            rows.append(row(arch.config_from_file(item).validate()))
        else:
            rows.append(row(arch.get_preset(item), item))
    return rows


def measure(configs: Sequence[Any], settings, rounds: int = 3, *, cancel=None,
            progress: Callable[[float, str], None] | None = None) -> list[dict[str, Any]]:
    """Probe every configuration ``rounds`` times, round-robin, and return per configuration the
    median over rounds of: median latency (ms), throughput (images/s), peak memory (bytes).

    Round-robin (A B C A B C …) rather than A A A B B B: on a shared machine a slow spell then
    hits every configuration alike, so their ratios stay fair."""
    from statistics import median

    from densegui.core.probe.run import run_probe
    from densegui.core.probe.types import ProbeCancelled

    if rounds < 1:
        raise ConfigError(f"rounds must be at least 1, got {rounds}.")
    settings = replace(settings, breakdown=False)
    results: list[list] = [[] for _ in configs]
    total = rounds * len(configs)
    for r in range(rounds):
        for i, cfg in enumerate(configs):
            if cancel is not None and cancel():
                raise ProbeCancelled("measurement cancelled.")
            if progress is not None:
                progress((r * len(configs) + i) / total, f"round {r + 1}/{rounds}: {cfg.label()}")
            results[i].append(run_probe(cfg, settings, cancel=cancel))
    if progress is not None:
        progress(1.0, "done")
    out = []
    for res in results:
        peaks = [x.peak_memory_bytes for x in res if x.peak_memory_bytes is not None]
        out.append({"device": res[0].device, "mode": res[0].mode, "batch_size": res[0].batch_size,
                    "precision": res[0].precision, "rounds": rounds,
                    "latency_ms": median(x.median_ms for x in res),
                    "throughput": median(x.throughput for x in res),
                    "peak_memory_bytes": int(median(peaks)) if peaks else None})
    return out
