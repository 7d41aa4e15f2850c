"""Image datasets for ``densegui train``: one bundled offline set plus local folders.

``load_dataset(spec)`` returns a :class:`Dataset` with a training split and a
held-out split, both as ``uint8`` tensors ``[N, C, H, W]`` with ``int64``
labels. ``spec`` is one of

* ``digits`` -- scikit-learn's 8×8 handwritten digits (1,797 images, 10
  classes), shipped with densegui (``resources/digits-8x8.u8.gz``): no
  download, no scikit-learn. The held-out split is a fixed, seeded, stratified 20 %.
* ``cifar10:DIR`` / ``cifar100:DIR`` -- the CIFAR "python version" batches
  (``data_batch_1..5`` + ``test_batch``, or ``train`` + ``test``). These are
  pickles, read with a restricted unpickler that only rebuilds builtins and
  numpy arrays; anything else is refused.
* ``mnist:DIR`` / ``fashion-mnist:DIR`` -- the four IDX files
  (``train-images-idx3-ubyte`` ..., optionally ``.gz``).
* ``folder:DIR`` -- one sub-folder per class of images in any format Pillow
  reads (PNG, PGM/PPM, JPEG, BMP, ...; Pillow comes with the ``train``
  extra). Held-out split: seeded, stratified 20 %.
* ``imagenet:DIR`` -- ``DIR/train/<class>/`` and ``DIR/val/<class>/`` image files (ImageNet's
  layout), read from disk batch by batch in DataLoader worker processes (:class:`FileSplit`).
* a bare ``DIR`` -- the format is detected from the files in it.

Every problem with the data (missing, truncated, malformed, hostile) is a
:class:`DataError` with a one-line message.

This module reads each kind (its held-out policy and augmentation kind) and dispatches on the
spec; what a dataset is (splits, the stratified held-out split) is in
:mod:`densegui.core.train.dataset`, decoding the files themselves (pickles, IDX, images) in
:mod:`densegui.core.train.data_formats`; neither imports this module.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from densegui.core.train.data_formats import (  # DataError and read_image are also imported from here
    DataError,
    _cifar_batch,
    _find_idx,
    _label_names,
    _pillow,
    read_idx,
    read_image,
)
from densegui.core.train.dataset import (  # Split, Dataset and FileSplit are also imported from here
    HOLDOUT_FRACTION,
    SPLIT_SEED,
    Dataset,
    FileSplit,
    Split,
    data_folder,
    split_dataset,
)

DATASET_KINDS = ("digits", "cifar10", "cifar100", "mnist", "fashion-mnist", "folder", "imagenet")
IMAGE_SUFFIXES = (".png", ".pgm", ".ppm", ".pnm", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MAX_FOLDER_IMAGES = 200_000

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


# --------------------------------------------------------------------- digits
DIGITS_FILE = "digits-8x8.u8.gz"  # 64 pixels + label per row; origin and license: resources/DIGITS-LICENSE.md


def load_digits(fraction: float = HOLDOUT_FRACTION, seed: int = SPLIT_SEED) -> Dataset:
    """scikit-learn's 8×8 digits (values 0..16, in its order) as shipped, stratified held-out split."""
    from densegui.core.resources import resource_path

    path = resource_path(DIGITS_FILE)
    try:
        rows = np.frombuffer(gzip.decompress(path.read_bytes()), dtype=np.uint8).reshape(-1, 65)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise DataError(f"cannot read the digits shipped with densegui ({path}): "
                        f"{getattr(exc, 'strerror', None) or exc}; reinstall densegui.") from None
    if not len(rows) or rows[:, :64].max() > 16 or rows[:, 64].max() > 9:
        raise DataError(f"the digits shipped with densegui ({path}) are damaged; reinstall densegui.")
    images = torch.from_numpy(rows[:, :64].reshape(-1, 1, 8, 8).copy())
    labels = torch.from_numpy(rows[:, 64].astype(np.int64))
    return split_dataset("digits", "scikit-learn", images, labels, [str(i) for i in range(10)], 16.0, 1,
                          fraction, seed)


# ---------------------------------------------------------------------- CIFAR
def load_cifar(folder: str | Path, kind: str = "auto") -> Dataset:
    """CIFAR-10 (``data_batch_1..5``, ``test_batch``) or CIFAR-100 (``train``, ``test``) python batches."""
    root = data_folder(folder, "CIFAR")
    if kind in ("auto", "cifar10") and (root / "test_batch").exists():
        kind = "cifar10"
    elif kind in ("auto", "cifar100") and (root / "train").is_file() and (root / "test").is_file():
        kind = "cifar100"
    if kind == "cifar10":
        train_files = sorted(root.glob("data_batch_*"))
        if not train_files or not (root / "test_batch").exists():
            raise DataError(f"{str(root)!r} lacks the CIFAR-10 python batches (data_batch_1..5 and test_batch).")
        parts = [_cifar_batch(p, "labels") for p in train_files]
        x_tr, y_tr = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        x_te, y_te = _cifar_batch(root / "test_batch", "labels")
        n = 10
        classes = _label_names(root / "batches.meta", "label_names", n)
    elif kind == "cifar100":
        if not (root / "train").is_file() or not (root / "test").is_file():
            raise DataError(f"{str(root)!r} lacks the CIFAR-100 python files 'train' and 'test'.")
        x_tr, y_tr = _cifar_batch(root / "train", "fine_labels")
        x_te, y_te = _cifar_batch(root / "test", "fine_labels")
        n = 100
        classes = _label_names(root / "meta", "fine_label_names", n)
    else:
        raise DataError(f"{str(root)!r} holds neither CIFAR-10 (data_batch_*, test_batch) nor CIFAR-100 "
                        "(train, test) python batches.")
    for y, what in ((y_tr, "training"), (y_te, "test")):
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= n):
            raise DataError(f"{kind} {what} labels must be 0..{n - 1}, found {int(y.min())}..{int(y.max())}.")
    return Dataset(kind, str(root), Split(x_tr, y_tr), Split(x_te, y_te), classes, 255.0,
                   {"kind": "official test set"}, "crop-flip", 4)


# ------------------------------------------------------------------------ IDX
def load_mnist(folder: str | Path, kind: str = "mnist") -> Dataset:
    """MNIST / Fashion-MNIST from the four IDX files; the official test set is held out."""
    root = data_folder(folder, "MNIST")
    parts = []
    for prefix in ("train", "t10k"):
        x = read_idx(_find_idx(root, prefix, "images-idx3"))
        y = read_idx(_find_idx(root, prefix, "labels-idx1"))
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DataError(f"{prefix} images must be a uint8 N×H×W IDX array, got {x.dtype} with {x.ndim} dims.")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{prefix}: {len(x)} images but {len(y)} labels.")
        if x.shape[1] != x.shape[2]:
            raise DataError(f"{prefix} images must be square, got {x.shape[1]}×{x.shape[2]}.")
        y64 = y.astype(np.int64)
        if len(y64) and (y64.min() < 0 or y64.max() > 9):
            raise DataError(f"{prefix} labels must be 0..9, found {y64.min()}..{y64.max()}.")
        parts.append((torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y64)))
    if parts[0][0].shape[2:] != parts[1][0].shape[2:]:
        raise DataError("training and test images differ in size.")
    if kind == "auto":
        kind = "fashion-mnist" if "fashion" in str(root).lower() else "mnist"
    classes = FASHION_CLASSES if kind == "fashion-mnist" else [str(i) for i in range(10)]
    return Dataset(kind, str(root), Split(*parts[0]), Split(*parts[1]), list(classes), 255.0,
                   {"kind": "official test set"}, "shift", 2)


# ---------------------------------------------------------------- image folder
def load_image_folder(folder: str | Path, size: int | None = None, fraction: float = HOLDOUT_FRACTION,
                      seed: int = SPLIT_SEED) -> Dataset:
    """One sub-folder per class (sorted names = class indices). Images are resized to ``size``
    (default: the most common side among the images) and made grey if every image is grey, else RGB."""
    root = data_folder(folder, "image-folder")
    _pillow()
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) < 2:
        raise DataError(f"{str(root)!r} must hold one sub-folder per class (at least 2), found {len(class_dirs)}.")
    files: list[tuple[Path, int]] = []
    for label, d in enumerate(class_dirs):
        found = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"class folder {d.name!r} holds no images ({', '.join(IMAGE_SUFFIXES[:3])} ...).")
        files += [(p, label) for p in found]
        if len(files) > MAX_FOLDER_IMAGES:
            raise DataError(f"{str(root)!r} holds more than {MAX_FOLDER_IMAGES} images; use a smaller folder.")
    arrays = [read_image(p) for p, _ in files]
    grey = all(a.shape[2] == 1 for a in arrays)
    if size is None:
        size = Counter(max(a.shape[0], a.shape[1]) for a in arrays).most_common(1)[0][0]
    if not 1 <= size <= 1024:
        raise DataError(f"image size must be from 1 to 1024 pixels, got {size}.")
    out = torch.empty((len(arrays), 1 if grey else 3, size, size), dtype=torch.uint8)
    for i, a in enumerate(arrays):
        t = torch.from_numpy(np.array(a, dtype=np.uint8)).permute(2, 0, 1)
        if not grey and t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        if t.shape[1:] != (size, size):
            t = torch.nn.functional.interpolate(t[None].float(), size=(size, size), mode="bilinear",
                                                antialias=True, align_corners=False)[0]
            t = t.round().clamp(0, 255).to(torch.uint8)
        out[i] = t
    labels = torch.tensor([lab for _, lab in files], dtype=torch.int64)
    return split_dataset("folder", str(root), out, labels, [d.name for d in class_dirs], 255.0,
                          max(1, size // 8), fraction, seed)


# ------------------------------------------------------------ ImageNet-style folders
def load_imagenet_folder(folder: str | Path, size: int | None = None) -> Dataset:
    """``train/`` and ``val/``, each one sub-folder per class (train's sorted names = class indices),
    left on disk as :class:`FileSplit`; images become RGB ``size``² crops (default 224)."""
    root = data_folder(folder, "ImageNet-style")
    _pillow()
    missing = [s for s in ("train", "val") if not (root / s).is_dir()]
    if missing:
        raise DataError(f"{str(root)!r} lacks {missing[0]}/: an ImageNet-style dataset has train/ and val/ folders, "
                        "each with one sub-folder per class.")
    found = [sorted(d.name for d in (root / s).iterdir() if d.is_dir() and not d.name.startswith(".")) for s in
             ("train", "val")]
    classes = found[0]
    if len(classes) < 2 or set(found[1]) - set(classes):
        raise DataError(f"{str(root)!r}: train/ must hold at least 2 class folders and val/ no class train/ lacks.")
    splits = []
    for sub in ("train", "val"):
        files, labels = [], []
        for label, d in enumerate(root / sub / name for name in classes):
            got = sorted(e.path for e in os.scandir(d) if e.is_file() and Path(e.name).suffix.lower()
                         in IMAGE_SUFFIXES) if d.is_dir() else []
            files += got
            labels += [label] * len(got)
        if not files:
            raise DataError(f"{str(root / sub)!r} holds no images ({', '.join(IMAGE_SUFFIXES[:3])} ...).")
        splits.append(FileSplit(files, torch.tensor(labels, dtype=torch.int64), size or 224, sub == "train"))
    return Dataset("imagenet", str(root), splits[0], splits[1], classes, 255.0, {"kind": "val/ folder"},
                   "resized-crop-flip", 0)


# ------------------------------------------------------------------- dispatch
def detect_kind(folder: str | Path) -> str:
    """'cifar10', 'cifar100', 'mnist' (or 'fashion-mnist') or 'folder' from the files present."""
    root = data_folder(folder, "dataset")
    names = {p.name for p in root.iterdir()}
    if "test_batch" in names or any(n.startswith("data_batch_") for n in names):
        return "cifar10"
    if {"train", "test"} <= names and (root / "train").is_file():
        return "cifar100"
    if any("idx3-ubyte" in n or "idx1-ubyte" in n for n in names):
        return "fashion-mnist" if "fashion" in str(root.resolve()).lower() else "mnist"
    if (root / "train").is_dir() and (root / "val").is_dir():
        return "imagenet"
    if any((root / n).is_dir() for n in names):
        return "folder"
    raise DataError(f"cannot tell what dataset {str(root)!r} holds: expected CIFAR python batches, "
                    "MNIST IDX files, or one sub-folder of images per class.")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"digits"`` → ("digits", None); ``"mnist:/data"`` → ("mnist", "/data"); ``"/data"`` → ("auto", "/data")."""
    text = (spec or "").strip()
    if not text:
        raise DataError("no dataset given; use digits or KIND:FOLDER (kinds: " + ", ".join(DATASET_KINDS) + ").")
    if text.lower() == "digits":
        return "digits", None
    kind, sep, rest = text.partition(":")
    if sep and kind.lower() in DATASET_KINDS + ("cifar", "idx", "auto") and rest:
        kind = kind.lower()
        kind = {"cifar": "auto-cifar", "idx": "auto-mnist"}.get(kind, kind)
        return kind, rest
    return "auto", text


def load_dataset(spec: str, *, size: int | None = None, fraction: float = HOLDOUT_FRACTION,
                 seed: int = SPLIT_SEED) -> Dataset:
    """The dataset ``spec`` names (see the module docstring); DataError if it cannot be read."""
    kind, path = parse_spec(spec)
    if kind == "digits":
        if path is not None:
            raise DataError("the digits dataset ships with densegui; use --dataset digits without a folder.")
        return load_digits(fraction, seed)
    assert path is not None
    if kind == "auto":
        kind = detect_kind(path)
    if kind in ("cifar10", "cifar100", "auto-cifar"):
        return load_cifar(path, "auto" if kind == "auto-cifar" else kind)
    if kind in ("mnist", "fashion-mnist", "auto-mnist"):
        return load_mnist(path, "auto" if kind == "auto-mnist" else kind)
    if kind == "folder":
        return load_image_folder(path, size, fraction, seed)
    if kind == "imagenet":
        return load_imagenet_folder(path, size)
    raise DataError(f"unknown dataset kind {kind!r}; use one of {', '.join(DATASET_KINDS)}.")
