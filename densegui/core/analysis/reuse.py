"""The feature-reuse metric of the DenseNet paper (Huang et al. 2017, Figure 5).

For each dense block with input k0 channels, growth rate k and L layers:

* rows are sources: the block input (s = 0), then layers 1..L;
* columns are targets: layers 1..L, then the following transition (or the
  classifier after the last block);
* cell (s, t) is mean(|W[:, slice_s]|) over the target's first convolution W
  (the 1×1 conv of a bottleneck layer; the transition's conv; the classifier's
  weight matrix), where source 0 owns input channels [0, k0) and source j owns
  [k0 + (j−1)k, k0 + jk);
* a source that does not feed the target (s ≥ t for layer targets) is NaN
  ("no connection"; ``null`` in JSON, empty in CSV); so is the classifier column of a
  state_dict without ``classifier.weight`` (a checkpoint whose head was not recognised).

That is the ``weights`` measure. The other three (``bn-weights``, ``activation``,
``ablation``) fill the same :class:`BlockReuse` shape; they live in
:mod:`densegui.core.analysis.reuse_measures` and :mod:`densegui.core.analysis.reuse_data`, with the
noise floor that says which differences are real.

Imports neither torch nor (until the metric runs) NumPy at module level:
:class:`BlockReuse` is unpickled in the GUI process, which never imports torch,
and the CLI reads the choices below whenever it builds its parser.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.errors import DenseguiError
from densegui.core.weights.statedict import as_numpy

if TYPE_CHECKING:
    import numpy as np
    import torch

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
    source_channels: list[tuple[int, int]]  # [start, end) of each source in its targets' input
    measure: str = DEFAULT_MEASURE
    noise: dict[str, Any] | None = None
    within_noise: np.ndarray | None = None  # bool, same shape (False where no connection)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

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


def target_weight_keys(config: DenseNetConfig, block: int) -> list[str]:
    """State_dict keys of the first convolution of each target of ``block`` (1-based)."""
    keys = [f"features.denseblock{block}.denselayer{ell}.conv1.weight"
            for ell in range(1, config.block_depths[block - 1] + 1)]
    keys.append(f"features.transition{block}.conv.weight" if block < config.num_blocks else "classifier.weight")
    return keys


def _channel_means(weight: torch.Tensor) -> np.ndarray:
    """mean |w| per input channel (dimension 1), float64.

    NumPy rather than PyTorch: single-threaded, so it does not stall on a busy machine
    (see :func:`densegui.core.weights.statedict.as_numpy`); float64 accumulation.
    """
    import numpy as np

    w = as_numpy(weight)
    if w.ndim == 2:
        w = w[:, :, None, None]
    count = w.shape[0] * w.shape[2] * w.shape[3]
    return np.abs(w).sum(axis=(0, 2, 3), dtype=np.float64) / count


def block_layout(config: DenseNetConfig, block: int) -> tuple[list[str], list[str], list[tuple[int, int]]]:
    """(sources, targets, source channel ranges) of dense block ``block`` (1-based)."""
    k = config.growth_rate
    k0, _ = config.block_channels()[block - 1]
    depth = config.block_depths[block - 1]
    last = block == config.num_blocks
    sources = ["input"] + [f"layer {j}" for j in range(1, depth + 1)]
    targets = [f"layer {j}" for j in range(1, depth + 1)] + ["classifier" if last else f"transition {block}"]
    ranges = [(0, k0)] + [(k0 + (j - 1) * k, k0 + j * k) for j in range(1, depth + 1)]
    return sources, targets, ranges


def block_reuse(state_dict: Mapping[str, torch.Tensor], config: DenseNetConfig, block: int,
                per_channel: Any = None, measure: str = DEFAULT_MEASURE) -> BlockReuse:
    """The reuse matrix of dense block ``block`` (1-based).

    ``per_channel(state_dict, key)`` gives one value per input channel of the target whose first
    weight is ``key`` (default: mean |w|, the paper's metric); ``None`` leaves the column empty."""
    import numpy as np

    sources, targets, ranges = block_layout(config, block)
    per_channel = per_channel or _weight_channels
    matrix = np.full((len(sources), len(targets)), np.nan, dtype=np.float64)
    for t, key in enumerate(target_weight_keys(config, block)):
        if key == "classifier.weight" and key not in state_dict:
            continue  # a file without a (recognised) classifier: that column stays empty
        if key not in state_dict:
            raise DenseguiError(f"tensor {key!r} is missing; cannot compute block {block}'s reuse.")
        values = per_channel(state_dict, key)
        if values is None:
            continue
        # target t (layer t+1, or the transition/classifier at t = depth) sees sources 0..t
        expected = ranges[t][1]
        if values.size != expected:
            raise DenseguiError(f"tensor {key!r} takes {values.size} input channels, expected {expected}.")
        matrix[:t + 1, t] = [values[start:end].mean() for start, end in ranges[:t + 1]]
    return BlockReuse(block, sources, targets, matrix, ranges, measure=measure)


def _weight_channels(state_dict: Mapping[str, torch.Tensor], key: str) -> np.ndarray:
    return _channel_means(state_dict[key])


def reuse_matrices(state_dict: Mapping[str, torch.Tensor], config: DenseNetConfig) -> list[BlockReuse]:
    """Figure 5's matrices for every dense block."""
    return [block_reuse(state_dict, config, b) for b in range(1, config.num_blocks + 1)]


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
