"""The feature-reuse metric of the DenseNet paper (Huang et al. 2017, Figure 5).

For each dense block with input k0 channels, growth rate k and L layers:

* rows are sources: the block input (s = 0), then layers 1..L;
* columns are targets: layers 1..L, then the following transition (or the
  classifier after the last block);
* cell (s, t) is mean(|W[:, slice_s]|) over the target's first convolution W
  (the 1×1 conv of a bottleneck layer; the transition's conv; the classifier's
  weight matrix), where slice_s is source s's channels in *that target's* input: its
  sources are concatenated in increasing order (densely, source 0 owns [0, k0) and
  source j owns [k0 + (j−1)k, k0 + jk); a sparse connectivity skips some);
* a source that does not feed the target (s ≥ t for layer targets, and the sources a
  ``log`` or ``window:W`` layer skips) is NaN ("no connection"; ``null`` in JSON, empty
  in CSV); so is the classifier column of a state_dict without ``classifier.weight`` (a
  checkpoint whose head was not recognised).

That is the ``weights`` measure. All four measures (``weights``, ``bn-weights``, ``activation``,
``ablation``) fill the same :class:`BlockReuse` shape over the blocks :func:`block_layouts` reads
from the family's plan (a unit's ``mixer`` is the weight W, its ``source_channels`` the slices).
The weight measures and their noise floor are in :mod:`densegui.core.analysis.reuse_measures`,
the data measures in :mod:`densegui.core.analysis.reuse_data`, the pruning curve in
:mod:`densegui.core.analysis.reuse_prune`.

Imports neither torch nor (until a function needs it) NumPy at module level:
:class:`BlockReuse` is unpickled in the GUI process, which never imports torch,
and the CLI reads the choices below whenever it builds its parser.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from densegui.core.errors import DenseguiError

if TYPE_CHECKING:
    import numpy as np

    from densegui.core.arch.family import Family
    from densegui.core.arch.plan import Plan, Unit

# The measures (one cell per source → target connection, same shape for each).
MEASURES = ("weights", "bn-weights", "activation", "ablation")
DATA_MEASURES = ("activation", "ablation")  # these need images; the other two read the weights only
DEFAULT_MEASURE = "weights"
MEASURE_LABELS = {
    "weights": "mean |w| (the paper's Figure 5)",
    "bn-weights": "mean |w| × BatchNorm scale |γ|/√(var+ε)",
    "activation": "mean |contribution| to the target's first conv, on data",
    "ablation": "Δ held-out loss when the connection is cut",
}
MEASURE_UNITS = {"weights": "mean |w|", "bn-weights": "mean |γ/σ·w|", "activation": "mean |contribution|",
                 "ablation": "Δ loss"}
# column-max: each column ÷ its max, so a ratio r between two sources is a colour difference of at most
# 1 − 1/r of the bar: an init-sized 1.08× stays a 7 % step. The default for the ratio measures.
# column: each target column min–max → [0, 1] (the paper's contrast; it stretches even noise-sized
# differences across the whole bar). block: the whole block min–max → [0, 1].
NORMALISATIONS = ("column-max", "column", "block", "raw")
DEFAULT_NORMALISATION = "column-max"
# Ablation's Δ loss is signed and comparable across targets: its default view is the raw value.
DEFAULT_NORMALISATIONS = {"weights": "column-max", "bn-weights": "column-max", "activation": "column-max",
                          "ablation": "raw"}
# How each normalisation is named to the user (GUI menu, CLI help, PNG titles).
NORMALISATION_LABELS = {
    "column-max": "per target column, ÷ max",
    "column": "per target column, min–max → [0, 1] (the paper's contrast)",
    "block": "per block, min–max → [0, 1]",
    "raw": "raw values",
}
# Colour maps offered for the heatmaps (pyqtgraph names); others pyqtgraph knows work too.
COLORMAPS = ("viridis", "inferno", "magma", "plasma", "cividis", "turbo", "CET-L1")
DEFAULT_COLORMAP = "viridis"
# The trained checkpoint shipped in resources/, shown when no file is given.
DEFAULT_CHECKPOINT = "densenet40-digits.pt"


def default_checkpoint_path() -> Path:
    """Where the shipped :data:`DEFAULT_CHECKPOINT` is (the file may be missing)."""
    from densegui.core import resources

    return resources.resource_path(DEFAULT_CHECKPOINT)


@dataclass
class BlockReuse:
    """One block's reuse matrix: ``matrix[s, t]`` (NaN where no connection).

    ``noise`` describes the block's noise floor (JSON-ready; see
    :mod:`densegui.core.analysis.reuse_measures`), ``within_noise[s, t]`` is True where the cell cannot be
    told apart from its column's typical value at that floor, and ``extra`` holds further
    matrices of the same shape (ablation: ``delta_accuracy``, ``stderr``, ``stderr_accuracy``)."""

    block: int
    sources: list[str]
    targets: list[str]
    matrix: np.ndarray  # float64, rows = sources, columns = targets
    source_channels: list[tuple[int, int]]  # [start, end) of each source in the block's output (the last target's input)
    measure: str = DEFAULT_MEASURE
    noise: dict[str, Any] | None = None
    within_noise: np.ndarray | None = None  # bool, same shape (False where no connection)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    # Per target column: (source row, start, end) of each source it reads, in its own input.
    # None: every target reads sources 0..t at ``source_channels`` (dense).
    reads: list[tuple[tuple[int, int, int], ...]] | None = None

    def channels(self, row: int, target: int) -> tuple[int, int] | None:
        """[start, end) of source ``row`` in target ``target``'s input; None where it does not read it."""
        if self.reads is None:
            return tuple(self.source_channels[row]) if row <= target else None
        return next(((s, e) for r, s, e in self.reads[target] if r == row), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "block": self.block,
            "measure": self.measure,
            "sources": list(self.sources),
            "targets": list(self.targets),
            "matrix": matrix_json(self.matrix),
        }
        for name, values in self.extra.items():
            out[name] = matrix_json(values)
        if self.noise is not None:
            floor = dict(self.noise)
            if self.within_noise is not None:
                floor["within_noise"] = [[None if math.isnan(v) else bool(w) for v, w in zip(row, flags)]
                                         for row, flags in zip(self.matrix.tolist(), self.within_noise.tolist())]
            out["noise_floor"] = floor
        return out


def vector_json(values: Any) -> list[float | None]:
    """Floats, ``None`` for NaN (no connection, or nothing measured)."""
    return [None if math.isnan(v) else float(v) for v in values]


def matrix_json(matrix: np.ndarray) -> list[list[float | None]]:
    """Rows of floats, ``None`` for NaN (no connection)."""
    return [vector_json(row) for row in matrix.tolist()]


@dataclass(frozen=True)
class BlockLayout:
    """One dense block as the reuse measures see it, read from the family's plan."""

    block: int  # 1-based
    sources: list[str]  # "input", "layer 1" … (rows)
    targets: list[str]  # "layer 1" … and "transition b" or "classifier" (columns)
    ranges: list[tuple[int, int]]  # [start, end) of each source in the block's output (the last target's input)
    units: tuple[Unit, ...]  # the targets' plan units, in column order
    # Per target: (source row, start, end) of each source it reads, in its own input, in increasing
    # row order (the plan unit's sources; densely rows 0..t at ``ranges``, sparsely fewer).
    reads: tuple[tuple[tuple[int, int, int], ...], ...] = ()

    @property
    def keys(self) -> list[str]:
        """State_dict key of each target's mixing weight (its first conv, or the classifier's matrix)."""
        return [f"{u.mixer}.weight" for u in self.units]

    @property
    def norms(self) -> list[str | None]:
        """Key prefix of the BatchNorm that normalises each target's input (None: it has none)."""
        return [input_norm(u) for u in self.units]


def input_norm(unit: Unit) -> str | None:
    """The BatchNorm (key prefix) over ``unit``'s concatenated input: the last one before its mixer
    (None where there is none: a LayerNorm has no running statistics)."""
    found = None
    for t in unit.tensors:
        if t.key == f"{unit.mixer}.weight":
            break
        if t.key.endswith(".running_var") and t.shape == (unit.in_channels,):
            found = t.key[: -len(".running_var")]
    return found


def not_reusable(family: Family) -> DenseguiError:
    """The one line for a family without the reuse measures (``family.can(REUSE)`` is False)."""
    return DenseguiError(f"the feature-reuse measures need dense blocks; a {family.title} has none.")


def unavailable(layouts: list[BlockLayout], family: Family, measure: str) -> str | None:
    """Why ``measure`` (a measure's name, or words such as "the pruning curve") does not carry over
    to these blocks, in one line (None: it does). ``weights`` always does;
    ``bn-weights`` and the data measures (and so the pruning curve) need a BatchNorm right before
    each target's mixing weight: the former reads its per-channel scale, the latter run the
    forward pass as a DenseNet's (BatchNorm, ReLU, mixer; :mod:`densegui.core.analysis.reuse_walk`)."""
    if measure == "weights":
        return None
    lacking = next((u for layout in layouts for u, norm in zip(layout.units, layout.norms) if norm is None), None)
    if lacking is None:
        return None
    where = f"{family.title}s have no BatchNorm before their mixing weights ({lacking.mixer})"
    if measure == "bn-weights":
        return (f"{where}, so bn-weights (mean |w| × that BatchNorm's per-channel scale) cannot be computed; "
                "the weights measure can.")
    return (f"{where}, so {measure} cannot be computed (the data measures run a DenseNet's forward: BatchNorm, "
            "ReLU, then each target's mixing weight); the weights measure can.")


def block_layouts(plan: Plan) -> list[BlockLayout]:
    """Every dense block of ``plan``: its layers (the mixing units with a layer index), closed by
    the unit that reads the whole block (a transition, or the classifier). Each target reads what
    its plan unit says: rows and channel slices from its ``sources`` and ``source_channels``."""
    out: list[BlockLayout] = []
    units: list[Unit] = []
    for u in plan.units:
        if u.mixer is None or not u.sources:
            continue
        units.append(u)
        if u.index is None:  # the transition or the classifier: it reads every source, in row order
            out.append(_layout(len(out) + 1, units))
            units = []
    return out


def _layout(b: int, units: list[Unit]) -> BlockLayout:
    last = units[-1]
    row_of = {path: row for row, path in enumerate(last.sources)}
    reads = []
    for u in units:
        if any(p not in row_of for p in u.sources):
            raise DenseguiError(f"{u.path} reads a feature map outside block {b}; the reuse measures need "
                                "each layer to read its own block only.")
        cells, start = [], 0
        for path, channels in zip(u.sources, u.source_channels, strict=True):
            cells.append((row_of[path], start, start + channels))
            start += channels
        reads.append(tuple(cells))
    layers = [f"layer {u.index}" for u in units[:-1]]
    final = "classifier" if last.kind == "head" else f"transition {b}"
    ranges = [(s, e) for _, s, e in reads[-1]]
    return BlockLayout(b, ["input", *layers], [*layers, final], ranges, tuple(units), tuple(reads))


def normalise(matrix: np.ndarray, mode: str = DEFAULT_NORMALISATION) -> np.ndarray:
    """Rescale a reuse matrix for display; NaN (no connection) stays NaN.

    * ``column``: each target column min–max to [0, 1] (its weakest source 0, its
      strongest 1; a column with a single source, or all equal, is 1);
    * ``column-max``: each column divided by its largest value;
    * ``block``: the whole block min–max to [0, 1];
    * ``raw``: unchanged.
    """
    import numpy as np

    if mode not in NORMALISATIONS:
        raise DenseguiError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, got {mode!r}.")
    m = np.asarray(matrix, dtype=np.float64)
    if mode == "raw":
        return m.copy()
    nan = np.isnan(m)
    if mode == "block":
        lo = np.full((1, m.shape[1]), np.nanmin(m) if (~nan).any() else 0.0)
        hi = np.full((1, m.shape[1]), np.nanmax(m) if (~nan).any() else 0.0)
    else:
        hi = np.where(nan, -np.inf, m).max(axis=0, keepdims=True)
        lo = np.zeros_like(hi) if mode == "column-max" else np.where(nan, np.inf, m).min(axis=0, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 0, (m - lo) / np.where(span > 0, span, 1.0), 1.0)
    out[nan] = np.nan
    return out


def check_measure(measure: str) -> str:
    if measure not in MEASURES:
        raise DenseguiError(f"unknown measure {measure!r}; use one of {', '.join(MEASURES)}.")
    return measure


def pruning_score(block: BlockReuse) -> np.ndarray:
    """How a measure orders a block's connections for pruning (low = cut first).

    Ratio measures are judged within each target (value ÷ its column's max: each target loses its
    least-used inputs first, whatever the target's weight scale); ablation's Δ loss is already
    comparable across targets."""
    return block.matrix.copy() if block.measure == "ablation" else normalise(block.matrix, "column-max")


def column_rank(matrix: np.ndarray, row: int, col: int) -> tuple[int, int]:
    """(rank, count) of ``matrix[row, col]`` among its column's connected cells (1 = largest)."""
    import numpy as np

    column = matrix[:, col]
    values = column[~np.isnan(column)]
    value = matrix[row, col]
    if math.isnan(value):
        return 0, int(values.size)
    return int((values > value).sum()) + 1, int(values.size)


def write_csv(blocks: list[BlockReuse], directory: str | Path) -> list[Path]:
    """One CSV per block (``block1.csv`` …): header = targets, first column = sources, raw values."""
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DenseguiError(f"cannot create folder {str(folder)!r}: {exc.strerror or type(exc).__name__}.") from None
    if not folder.is_dir():
        raise DenseguiError(f"{str(folder)!r} is not a folder.")
    written = []
    for b in blocks:
        path = folder / f"block{b.block}.csv"
        try:
            with path.open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["source \\ target", *b.targets])
                for name, row in zip(b.sources, b.matrix.tolist()):
                    w.writerow([name, *("" if math.isnan(v) else repr(float(v)) for v in row)])
        except OSError as exc:
            raise DenseguiError(f"cannot write {str(path)!r}: {exc.strerror or type(exc).__name__}.") from None
        written.append(path)
    return written
