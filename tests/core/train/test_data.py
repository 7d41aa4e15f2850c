"""Dataset readers, each on small files this test writes itself (no downloads; image folders need Pillow)."""

from __future__ import annotations

import gzip
import pickle
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from densegui.core.train import data as D
from densegui.core.train.data import DataError, load_dataset


# ------------------------------------------------------------------ writers
def _png(path: Path, img: np.ndarray, color_type: int, filters=(0,), palette: np.ndarray | None = None) -> None:
    """Write an 8-bit PNG, filtering row y with filters[y % len(filters)] (reference encoder)."""
    h, w = img.shape[:2]
    ch = 1 if img.ndim == 2 else img.shape[2]
    raw = img.reshape(h, w * ch).astype(np.int64)
    out = bytearray()
    prev = np.zeros(w * ch, np.int64)
    for y in range(h):
        f = filters[y % len(filters)]
        line = raw[y]
        left = np.concatenate([np.zeros(ch, np.int64), line[:-ch]])
        upleft = np.concatenate([np.zeros(ch, np.int64), prev[:-ch]])
        if f == 0:
            enc = line
        elif f == 1:
            enc = line - left
        elif f == 2:
            enc = line - prev
        elif f == 3:
            enc = line - (left + prev) // 2
        else:
            pred = []
            for a, b, c in zip(left, prev, upleft):
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred.append(a if pa <= pb and pa <= pc else (b if pb <= pc else c))
            enc = line - np.array(pred)
        out.append(f)
        out += bytes((enc % 256).astype(np.uint8))
        prev = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0))
    if palette is not None:
        data += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    data += chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b"")
    path.write_bytes(data)


def _idx(path: Path, arr: np.ndarray, gz: bool = False) -> None:
    body = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(body) if gz else body)


def _cifar_pickle(path: Path, obj) -> None:
    with path.open("wb") as fh:
        pickle.dump(obj, fh, protocol=2)


rng = np.random.default_rng(1)


# -------------------------------------------------------------------- digits
def test_digits_split_is_stratified_seeded_and_disjoint():
    from sklearn.datasets import load_digits

    d = load_dataset("digits")
    assert (len(d.train), len(d.test)) == (1438, 359)
    assert (d.channels, d.size, d.num_classes, d.scale) == (1, 8, 10, 16.0)
    sk = load_digits()
    # every held-out image is a real digits image with its label, and no image is in both splits
    flat = {tuple(x.reshape(-1).astype(int)) + (int(y),) for x, y in zip(sk.images, sk.target)}
    rows_te = [tuple(x.flatten().tolist()) + (int(y),) for x, y in zip(d.test.images, d.test.labels)]
    rows_tr = [tuple(x.flatten().tolist()) + (int(y),) for x, y in zip(d.train.images, d.train.labels)]
    assert set(rows_te) <= flat and set(rows_tr) <= flat
    assert len(rows_te) + len(rows_tr) == len(sk.target)
    # per-class held-out share is round(20 %)
    for c in range(10):
        n_c = int((sk.target == c).sum())
        assert int((d.test.labels == c).sum()) == round(0.2 * n_c)
    again = load_dataset("digits")
    assert torch.equal(again.test.images, d.test.images)
    other = load_dataset("digits", seed=1)
    assert not torch.equal(other.test.images, d.test.images)


def test_shipped_digits_are_scikit_learns_in_its_order():
    """resources/digits-8x8.u8.gz, read here with gzip alone, is load_digits() value for value."""
    import json
    from fnmatch import fnmatch

    from sklearn.datasets import load_digits

    from densegui.core.resources import resource_path

    path = resource_path(D.DIGITS_FILE)
    rows = np.frombuffer(gzip.decompress(path.read_bytes()), dtype=np.uint8).reshape(-1, 65)
    sk = load_digits()
    np.testing.assert_array_equal(rows[:, :64].reshape(-1, 8, 8), sk.images)
    np.testing.assert_array_equal(rows[:, 64], sk.target)
    assert path.stat().st_size < 120_000 and (path.parent / "DIGITS-LICENSE.md").exists()
    # `pip install .` installs it: pyproject's package-data names it.
    lines = (Path(__file__).parents[3] / "pyproject.toml").read_text().splitlines()
    patterns = json.loads(next(line for line in lines if line.startswith('"densegui.resources" = [')).split("=", 1)[1])
    assert any(fnmatch(path.name, p) for p in patterns) and any(fnmatch("DIGITS-LICENSE.md", p) for p in patterns)


def test_digits_need_no_scikit_learn(monkeypatch):
    expected = load_dataset("digits")
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    d = load_dataset("digits")
    assert torch.equal(d.train.images, expected.train.images) and torch.equal(d.test.labels, expected.test.labels)


def test_missing_or_damaged_shipped_digits_is_one_line(monkeypatch, tmp_path):
    import densegui.core.resources as resources

    monkeypatch.setattr(resources, "resource_path", lambda name: tmp_path / name)
    with pytest.raises(DataError, match=r"^cannot read the digits shipped with densegui .*No such file.*reinstall"):
        load_dataset("digits")
    (tmp_path / D.DIGITS_FILE).write_bytes(gzip.compress(bytes([3] * 64 + [12])))  # label 12
    with pytest.raises(DataError, match="are damaged; reinstall densegui"):
        load_dataset("digits")
    (tmp_path / D.DIGITS_FILE).write_bytes(gzip.compress(bytes(100)))  # not rows of 65
    with pytest.raises(DataError, match="cannot read the digits"):
        load_dataset("digits")


# --------------------------------------------------------------------- CIFAR
def _write_cifar10(root: Path, n_per_batch=6, batches=2):
    root.mkdir()
    expected = []
    for i in range(1, batches + 1):
        x = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        _cifar_pickle(root / f"data_batch_{i}", {b"batch_label": b"training batch", b"labels": y, b"data": x,
                                                 b"filenames": [b"a.png"] * n_per_batch})
        expected.append((x, y))
    xt = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
    _cifar_pickle(root / "test_batch", {b"labels": [0, 1, 2, 3], b"data": xt})
    names = [f"class{i}".encode() for i in range(10)]
    _cifar_pickle(root / "batches.meta", {b"label_names": names, b"num_cases_per_batch": n_per_batch})
    return expected, xt


def test_cifar10_batches(tmp_path):
    expected, xt = _write_cifar10(tmp_path / "c10")
    d = load_dataset(str(tmp_path / "c10"))  # detected
    assert d.name == "cifar10" and d.classes[3] == "class3"
    assert d.train.images.shape == (12, 3, 32, 32) and d.test.images.shape == (4, 3, 32, 32)
    x0, y0 = expected[0]
    # CIFAR layout: 1024 red, then 1024 green, then 1024 blue values, row-major
    assert int(d.train.images[2, 1, 3, 5]) == int(x0[2, 1024 + 3 * 32 + 5])
    assert d.train.labels[:6].tolist() == y0
    assert torch.equal(d.test.images.reshape(4, -1), torch.from_numpy(xt))
    assert d.split["kind"] == "official test set" and d.augment == "crop-flip"


def test_cifar100_with_str_keys(tmp_path):
    root = tmp_path / "c100"
    root.mkdir()
    x = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
    _cifar_pickle(root / "train", {"data": x, "fine_labels": [0, 99, 5, 7, 7], "coarse_labels": [0] * 5})
    _cifar_pickle(root / "test", {"data": x[:2], "fine_labels": [1, 2]})
    d = load_dataset(f"cifar100:{root}")
    assert d.name == "cifar100" and d.num_classes == 100
    assert d.train.labels.tolist() == [0, 99, 5, 7, 7]


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_cifar_hostile_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "evil"
    _write_cifar10(root)
    _cifar_pickle(root / "data_batch_1", {b"data": _Evil(), b"labels": [0]})
    with pytest.raises(DataError, match=r"refused to read 'data_batch_1'.*(posix|os|nt)\.system"):
        load_dataset(f"cifar10:{root}")
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


@pytest.mark.parametrize("damage, message", [
    ("truncate", "truncated or malformed|not a readable pickle"),
    ("shape", "must be uint8 N×3072"),
    ("labels", "6 images but 5 labels"),
    ("notdict", "expected a dict"),
    ("range", r"labels must be 0\.\.9"),
])
def test_cifar_malformed(tmp_path, damage, message):
    root = tmp_path / "c10"
    _write_cifar10(root)
    p = root / "data_batch_1"
    if damage == "truncate":
        p.write_bytes(p.read_bytes()[:100])
    elif damage == "shape":
        _cifar_pickle(p, {b"data": np.zeros((6, 100), np.uint8), b"labels": [0] * 6})
    elif damage == "labels":
        _cifar_pickle(p, {b"data": np.zeros((6, 3072), np.uint8), b"labels": [0] * 5})
    elif damage == "notdict":
        _cifar_pickle(p, [1, 2, 3])
    else:
        _cifar_pickle(p, {b"data": np.zeros((6, 3072), np.uint8), b"labels": [0, 1, 2, 3, 4, 10]})
    with pytest.raises(DataError, match=message):
        load_dataset(f"cifar10:{root}")


# ----------------------------------------------------------------------- IDX
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, gz):
    root = tmp_path / "fashion_mnist"
    root.mkdir()
    sfx = ".gz" if gz else ""
    xtr = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    xte = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    _idx(root / f"train-images-idx3-ubyte{sfx}", xtr, gz)
    _idx(root / f"train-labels-idx1-ubyte{sfx}", np.array([0, 1, 2, 3, 4, 5, 9]), gz)
    _idx(root / f"t10k-images-idx3-ubyte{sfx}", xte, gz)
    _idx(root / f"t10k-labels-idx1-ubyte{sfx}", np.array([9, 8, 7]), gz)
    d = load_dataset(str(root))
    assert d.name == "fashion-mnist" and d.classes[9] == "Ankle boot"
    assert torch.equal(d.train.images[:, 0], torch.from_numpy(xtr))
    assert d.test.labels.tolist() == [9, 8, 7]
    assert (d.channels, d.size) == (1, 28)
    assert load_dataset(f"mnist:{root}").name == "mnist"


def _mnist_dir(tmp_path: Path) -> Path:
    root = tmp_path / "m"
    root.mkdir()
    for prefix, n in (("train", 4), ("t10k", 2)):
        _idx(root / f"{prefix}-images-idx3-ubyte", np.zeros((n, 5, 5), np.uint8))
        _idx(root / f"{prefix}-labels-idx1-ubyte", np.zeros(n, np.uint8))
    return root


@pytest.mark.parametrize("damage, message", [
    ("magic", "not an IDX file"),
    ("truncate", "truncated or malformed"),
    ("count", "4 images but 3 labels"),
    ("missing", r"lacks t10k-labels-idx1-ubyte"),
    ("badgzip", "corrupt gzip"),
    ("label", r"labels must be 0\.\.9"),
])
def test_mnist_malformed(tmp_path, damage, message):
    root = _mnist_dir(tmp_path)
    if damage == "magic":
        (root / "train-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04" + b"\0" * 40)
    elif damage == "truncate":
        p = root / "train-images-idx3-ubyte"
        p.write_bytes(p.read_bytes()[:-3])
    elif damage == "count":
        _idx(root / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    elif damage == "missing":
        (root / "t10k-labels-idx1-ubyte").unlink()
    elif damage == "badgzip":
        (root / "train-images-idx3-ubyte").unlink()
        (root / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    else:
        _idx(root / "train-labels-idx1-ubyte", np.array([0, 1, 2, 12]))
    with pytest.raises(DataError, match=message):
        load_dataset(f"mnist:{root}")


# -------------------------------------------------------------- image folder
def test_read_image_modes(tmp_path):
    """Grey stays one channel; colour, palette and alpha images become RGB (alpha dropped)."""
    rgb = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    _png(tmp_path / "a.png", rgb, 2, (0, 1, 2, 3, 4))
    assert np.array_equal(D.read_image(tmp_path / "a.png"), rgb)
    grey = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    _png(tmp_path / "g.png", grey, 0, (4,))
    assert np.array_equal(D.read_image(tmp_path / "g.png"), grey[..., None])
    grey_alpha = rng.integers(0, 256, (5, 6, 2), dtype=np.uint8)
    _png(tmp_path / "ga.png", grey_alpha, 4)
    assert np.array_equal(D.read_image(tmp_path / "ga.png"), grey_alpha[..., :1])
    rgba = rng.integers(0, 256, (4, 4, 4), dtype=np.uint8)
    _png(tmp_path / "r.png", rgba, 6, (1, 3))
    assert np.array_equal(D.read_image(tmp_path / "r.png"), rgba[..., :3])
    pal = rng.integers(0, 256, (4, 3), dtype=np.uint8)
    idx = rng.integers(0, 4, (3, 5), dtype=np.uint8)
    _png(tmp_path / "p.png", idx, 3, (0,), palette=pal)
    assert np.array_equal(D.read_image(tmp_path / "p.png"), pal[idx])
    (tmp_path / "m.pgm").write_bytes(b"P5 2 2 15\n" + bytes([0, 5, 10, 15]))  # maxval 15: scaled to 0..255
    assert D.read_image(tmp_path / "m.pgm")[..., 0].tolist() == [[0, 85], [170, 255]]


def test_unreadable_images_are_one_line_errors(tmp_path):
    img = rng.integers(0, 256, (4, 4), dtype=np.uint8)
    _png(tmp_path / "a.png", img, 0)
    (tmp_path / "cut.png").write_bytes((tmp_path / "a.png").read_bytes()[:30])
    (tmp_path / "gif.png").write_bytes(b"GIF89a")
    (tmp_path / "cut.pgm").write_bytes(b"P5 4 4 255\n" + b"\0" * 5)
    (tmp_path / "bad.pgm").write_bytes(b"P5 x 4 255\n" + b"\0" * 16)
    for name in ("cut.png", "gif.png", "cut.pgm", "bad.pgm"):
        with pytest.raises(DataError, match=f"'{name}' is not a readable image"):
            D.read_image(tmp_path / name)
    with pytest.raises(DataError, match="cannot read 'gone.png'"):
        D.read_image(tmp_path / "gone.png")


def test_image_folder(tmp_path):
    root = tmp_path / "shapes"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    (root / "dog" / "notes.txt").write_text("not an image")
    cats = [rng.integers(0, 256, (6, 6, 3), dtype=np.uint8) for _ in range(5)]
    for i, im in enumerate(cats):
        _png(root / "cat" / f"{i}.png", im, 2, (i % 5,))
    for i in range(5):
        grey = np.full((6, 6), 40 * i, np.uint8)
        (root / "dog" / f"{i}.pgm").write_bytes(b"P5\n# comment\n6 6\n255\n" + grey.tobytes())
    (root / "dog" / "big.ppm").write_bytes(b"P6 12 12 255\n" + np.full((12, 12, 3), 200, np.uint8).tobytes())
    d = load_dataset(str(root))
    assert d.name == "folder" and d.classes == ["cat", "dog"]
    assert (d.channels, d.size) == (3, 6)  # RGB because some images are colour; most common side 6
    assert len(d.train) + len(d.test) == 11 and len(d.test) == round(0.2 * 5) + round(0.2 * 6)
    every = torch.cat([d.train.images, d.test.images])
    labels = torch.cat([d.train.labels, d.test.labels])
    # each cat PNG decoded exactly; grey PGMs became grey RGB; the 12×12 image was resized to 6×6 (value kept)
    for im in cats:
        t = torch.from_numpy(im).permute(2, 0, 1)
        assert any(torch.equal(t, e) for e in every[labels == 0])
    dogs = every[labels == 1]
    assert all(torch.equal(x[0], x[1]) and torch.equal(x[1], x[2]) for x in dogs)
    assert any(bool((x == 200).all()) for x in dogs)
    assert load_dataset(f"folder:{root}", size=4).size == 4


def test_image_folder_errors(tmp_path):
    root = tmp_path / "f"
    (root / "only").mkdir(parents=True)
    with pytest.raises(DataError, match="at least 2"):
        load_dataset(f"folder:{root}")
    (root / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_dataset(f"folder:{root}")
    (root / "empty" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
    (root / "only" / "y.jpg").write_bytes(b"\xff\xd8\xff\xe0JFIF")
    with pytest.raises(DataError):
        load_dataset(f"folder:{root}")


def test_image_folder_without_pillow_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DataError, match=r"need Pillow: pip install 'densegui\[train\]'"):
        load_dataset(f"folder:{tmp_path}")


# ------------------------------------------------------------------ dispatch
def test_specs_and_missing_data(tmp_path):
    assert D.parse_spec("digits") == ("digits", None)
    assert D.parse_spec("mnist:/x/y") == ("mnist", "/x/y")
    assert D.parse_spec("/some/dir") == ("auto", "/some/dir")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "nope"))
    with pytest.raises(DataError, match="without a folder"):
        load_dataset(f"digits:{tmp_path}")
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(DataError, match="not a folder"):
        load_dataset(f"cifar10:{tmp_path / 'file.bin'}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="cannot tell what dataset"):
        load_dataset(str(empty))
    with pytest.raises(DataError, match="lacks the CIFAR-10 python batches"):
        load_dataset(f"cifar10:{empty}")


def test_subset_is_seeded():
    d = load_dataset("digits")
    a, b = d.subset(50, 20, seed=3), d.subset(50, 20, seed=3)
    assert len(a.train) == 50 and len(a.test) == 20
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
