"""What a dataset is for ``densegui train``: in-memory and on-disk splits, the dataset with its
held-out policy and augmentation kind, and the seeded stratified held-out split.

:mod:`densegui.core.train.data` reads the datasets (``load_dataset``); the loop, the batches and
the data reuse measures need only these types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from densegui.core.train.data_formats import DataError, _pillow

HOLDOUT_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Dataset:
    """A training split and a held-out split of one image dataset."""

    name: str  # one of data.DATASET_KINDS
    source: str  # "scikit-learn" or the folder it was read from
    train: Split
    test: Split
    classes: list[str]
    scale: float = 255.0  # the pixel value that means "white" (16 for digits)
    split: dict[str, Any] = field(default_factory=dict)  # how the held-out split was made
    augment: str = "shift"  # "shift" (small translations) or "crop-flip" (CIFAR: pad 4, crop, h-flip)
    shift: int = 1  # largest translation in pixels

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def size(self) -> int:
        return int(self.train.images.shape[2])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def spec(self) -> str:
        return self.name if self.name == "digits" else f"{self.name}:{self.source}"

    def describe(self) -> str:
        return (f"{self.name} ({len(self.train)} training / {len(self.test)} held-out images, "
                f"{self.channels}×{self.size}×{self.size}, {self.num_classes} classes)")

    def to_metadata(self) -> dict[str, Any]:
        """What a checkpoint records about its data (JSON-friendly)."""
        return {
            "name": self.name,
            "spec": self.spec,
            "source": self.source,
            "num_train": len(self.train),
            "num_test": len(self.test),
            "channels": self.channels,
            "size": self.size,
            "classes": list(self.classes),
            "scale": float(self.scale),
            "split": dict(self.split),
            "augment": self.augment if self.augment != "shift" else f"shift ±{self.shift} px",
        }

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> Dataset:
        """A smaller copy (first ``n`` of a seeded permutation of each split), for quick runs and tests."""
        g = torch.Generator().manual_seed(seed)

        def cut(s: Split, n: int | None) -> Split:
            if n is None or n >= len(s):
                return s
            idx = torch.randperm(len(s), generator=g)[:n].sort().values
            return s.take(idx) if isinstance(s, FileSplit) else Split(s.images[idx], s.labels[idx])

        return Dataset(self.name, self.source, cut(self.train, n_train), cut(self.test, n_test), list(self.classes),
                       self.scale, {**self.split, "subset": [n_train, n_test, seed]}, self.augment, self.shift)


@dataclass
class FileSplit:
    """A split left on disk, decoded in DataLoader workers. Item ``(i, key)``: image i, uint8 [3, size, size],
    and its label. Training with ``augment``: a random resized crop (8-100 % of the area, aspect 3/4-4/3)
    and flip drawn from ``(key, i)``, whatever the worker count; else the centre 87.5 % of the short side."""

    files: list[str]
    labels: torch.Tensor
    size: int
    train: bool
    augment: bool = True

    def __len__(self) -> int:
        return len(self.files)

    @property
    def images(self) -> torch.Tensor:  # the shape alone: the pixels stay in the files
        return torch.empty((len(self.files), 3, self.size, self.size), dtype=torch.uint8, device="meta")

    def take(self, idx: torch.Tensor) -> FileSplit:
        return FileSplit([self.files[i] for i in idx.tolist()], self.labels[idx], self.size, self.train, self.augment)

    def __getitem__(self, item: tuple[int, int] | int) -> tuple[torch.Tensor, int]:
        i, key = item if isinstance(item, tuple) else (item, 0)
        rng = np.random.default_rng([key, i]) if self.train and self.augment else None
        Image = _pillow()
        try:
            with Image.open(self.files[i]) as im:
                im = im.convert("RGB")
                w, h = im.size
                box, side = None, 0.875 * min(w, h)
                for _ in range(10 if rng is not None else 0):
                    area, ratio = w * h * rng.uniform(0.08, 1.0), math.exp(rng.uniform(-0.2877, 0.2877))
                    cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
                    if 0 < cw <= w and 0 < ch <= h:
                        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                        box = (x, y, x + cw, y + ch)
                        break
                im = im.resize((self.size, self.size), Image.BILINEAR,
                               box=box or ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2))
                if rng is not None and rng.random() < 0.5:
                    im = im.transpose(Image.FLIP_LEFT_RIGHT)
                arr = np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # one line
            raise DataError(f"{Path(self.files[i]).name!r} is not a readable image ({type(exc).__name__}).") from None
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous(), int(self.labels[i])


# ------------------------------------------------------------------ utilities
def stratified_split(labels: torch.Tensor, fraction: float = HOLDOUT_FRACTION,
                     seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices): ``round(fraction·n_c)`` of each class
    held out, chosen by a permutation seeded with ``seed``; both sorted."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = int(round(fraction * len(idx)))
        if len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        test.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def split_dataset(name: str, source: str, images: torch.Tensor, labels: torch.Tensor, classes: list[str],
                  scale: float, shift: int, fraction: float, seed: int) -> Dataset:
    """A :class:`Dataset` of in-memory images with a stratified held-out ``fraction``."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"the held-out fraction must be between 0 and 1, got {fraction}.")
    tr, te = stratified_split(labels, fraction, seed)
    if len(te) == 0 or len(tr) == 0:
        raise DataError(f"{name}: too few images ({len(labels)}) for a training and a held-out split.")
    split = {"kind": "stratified", "fraction": fraction, "seed": seed}
    return Dataset(name, source, Split(images[tr], labels[tr]), Split(images[te], labels[te]), classes, scale,
                   split, "shift", shift)


def data_folder(folder: str | Path, what: str) -> Path:
    """``folder`` as a Path, DataError unless it is an existing folder."""
    p = Path(folder).expanduser()
    if not p.exists():
        raise DataError(f"{what} folder {str(p)!r} does not exist.")
    if not p.is_dir():
        raise DataError(f"{str(p)!r} is not a folder ({what} data is a folder of files).")
    return p
