"""Which earlier feature maps a dense layer concatenates (the ``connectivity`` field).

Inside a block, source 0 is the block input and source j ≥ 1 is layer j's output. Layer i (1-based)
reads:

* ``dense`` (the paper's): sources 0 … i−1;
* ``window:W`` (local dense connectivity, Hess 2018), W ≥ 1: sources max(0, i−W) … i−1;
* ``log`` (Log-DenseNet, Hu et al. 2018): sources i − 2^m for m = 0, 1, … while i − 2^m ≥ 0.

Sources are concatenated in increasing order. Transitions and the classifier always read the whole
block (every feature map). Pure Python, cached: the plan asks for every layer of every block.
"""

from __future__ import annotations

from functools import lru_cache

from densegui.core.arch import paths
from densegui.core.errors import ConfigError

DENSE = "dense"
KINDS = ("dense", "window", "log")
MAX_WINDOW = 128  # (a window as long as the deepest block allowed is dense)
SPEC_HELP = "dense (every earlier feature map), window:W (the W latest, W ≥ 1) or log (i−1, i−2, i−4, …)"


@lru_cache(maxsize=256)
def parse(spec: object) -> tuple[str, int]:
    """("dense", 0), ("window", W) or ("log", 0); ConfigError (one line) for anything else."""
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in ("dense", "log"):
            return text, 0
        kind, sep, w = text.partition(":")
        if kind == "window" and sep:
            if w.strip().isdigit() and 1 <= int(w) <= MAX_WINDOW:
                return "window", int(w)
            raise ConfigError(f"connectivity window:W needs a whole number W from 1 to {MAX_WINDOW}, got {spec!r}.")
    raise ConfigError(f"connectivity must be {SPEC_HELP}, got {spec!r}.")


def normal(spec: str) -> str:
    """The canonical spelling ("Window:04" → "window:4")."""
    kind, w = parse(spec)
    return f"window:{w}" if kind == "window" else kind


@lru_cache(maxsize=4096)
def sources(spec: str, i: int) -> tuple[int, ...]:
    """The sources layer ``i`` (1-based) of a block concatenates, in increasing order."""
    kind, w = parse(spec)
    if kind == "dense":
        return tuple(range(i))
    if kind == "window":
        return tuple(range(max(0, i - w), i))
    out, step = [], 1
    while i - step >= 0:
        out.append(i - step)
        step *= 2
    return tuple(reversed(out))


def in_channels(spec: str, i: int, c0: int, k: int) -> int:
    """Channels layer ``i`` reads when the block input has ``c0`` and every layer ``k``."""
    return sum(c0 if s == 0 else k for s in sources(spec, i))


@lru_cache(maxsize=512)
def connections(spec: str, depth: int) -> int:
    """Feature maps a block's layers concatenate, over the block (its transition's not counted)."""
    return sum(len(sources(spec, i)) for i in range(1, depth + 1))


@lru_cache(maxsize=512)
def longest_path(spec: str, depth: int) -> int:
    """The block's backprop distance: over every pair of its feature maps s < t (0: the block input,
    t ≤ ``depth``), the most layers a gradient from t must pass to reach s along the connections
    (1 for ``dense``; ⌈depth / W⌉ for ``window:W``; about log₂ depth for ``log``)."""
    return paths.longest_path(range(depth + 1), {t: sources(spec, t) for t in range(1, depth + 1)})


def fraction_kept(spec: str, depths: tuple[int, ...]) -> float:
    """The share of the dense pattern's connections (into the layers) that ``spec`` keeps."""
    dense = sum(connections(DENSE, d) for d in depths)
    return sum(connections(spec, d) for d in depths) / dense if dense else 1.0


def infer(blocks: list[tuple[list[int], int]], k: int) -> str | None:
    """The connectivity whose layers read the given channels in every block (``blocks``: each one's
    per-layer input channels and its input's channels ``c0``, growth ``k``): the simplest that fits
    (dense, then log, then the smallest window), or None."""
    deepest = max((len(ins) for ins, _ in blocks), default=1)
    for spec in (DENSE, "log", *(f"window:{w}" for w in range(1, max(deepest, 1)))):
        if all(in_channels(spec, i, c0, k) == c for ins, c0 in blocks for i, c in enumerate(ins, 1)):
            return spec
    return None
