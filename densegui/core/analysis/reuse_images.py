"""The held-out images the data measures run on, normalised as the checkpoint's network expects.

The data: ``spec`` as ``densegui train --dataset`` takes it; by default the dataset the
checkpoint records when it ships with densegui (digits), with the held-out split it records.
The normalisation is the one the checkpoint records; else ImageNet's for 3-channel ImageNet-style
folders, else the training split's own per-channel statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from densegui.core.train.batches import (
    channel_stats,
    eval_batches,
    file_stats,
    to_input,
)
from densegui.core.train.data import DataError, load_dataset
from densegui.core.train.dataset import Dataset, Split

IMAGENET_MEAN = [0.485, 0.456, 0.406]  # torchvision's ImageNet weights expect these
IMAGENET_STD = [0.229, 0.224, 0.225]
BATCH = 512


@dataclass
class EvalData:
    """Held-out images, normalised as the checkpoint's network expects."""

    spec: str
    description: str
    split: Any  # data.Split or data.FileSplit
    scale: float
    mean: list[float]
    std: list[float]

    def __len__(self) -> int:
        return len(self.split)

    def batches(self, batch_size: int = BATCH):
        """(normalised images in channels-last layout, labels): the layout the measures' nets use
        (oneDNN's convolutions run faster in it than in NCHW on the CPU)."""
        for images, labels in eval_batches(self.split, None, batch_size):
            x = to_input(images, self.scale, self.mean, self.std)
            yield x.contiguous(memory_format=torch.channels_last), labels

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "description": self.description, "images": len(self),
                "normalize": {"mean": self.mean, "std": self.std, "scale": self.scale}}


def resolve_data(config: Any, metadata: Mapping[str, Any] | None, spec: str | None = None,
                 max_images: int | None = None) -> EvalData:
    """The held-out images the data measures run on (DataError, one line, if there are none)."""
    meta = metadata or {}
    recorded = meta.get("dataset") if isinstance(meta.get("dataset"), Mapping) else {}
    recorded_spec = recorded.get("spec") if isinstance(recorded.get("spec"), str) else None
    if spec is None:
        if recorded_spec != "digits":
            trained = f" (it was trained on {recorded_spec})" if recorded_spec else ""
            raise DataError(f"this measure needs images and the checkpoint records no bundled dataset{trained}; "
                            "give images with --data (in the window: the Data field): digits, KIND:FOLDER or imagenet:FOLDER.")
        spec = recorded_spec
    same = recorded_spec == spec
    split = recorded.get("split") if same and isinstance(recorded.get("split"), Mapping) else {}
    kwargs: dict[str, Any] = {}
    if isinstance(split.get("fraction"), float):
        kwargs["fraction"] = split["fraction"]
    if isinstance(split.get("seed"), int):
        kwargs["seed"] = split["seed"]
    data = load_dataset(spec, size=config.input_size, **kwargs)
    if data.channels != config.in_channels:
        raise DataError(f"the data has {data.channels} channel{'s' * (data.channels != 1)} per image, "
                        f"the checkpoint's network takes {config.in_channels}.")
    if data.num_classes != config.num_classes:
        raise DataError(f"the data has {data.num_classes} classes, the checkpoint's classifier "
                        f"{config.num_classes}.")
    if data.size < config.min_input_size():
        raise DataError(f"the data's {data.size}×{data.size} images are smaller than the network's minimum "
                        f"input ({config.min_input_size()}).")
    if max_images is not None and max_images < len(data.test):
        data = data.subset(n_test=max_images)
    scale, mean, std = _normalisation(data, meta if same else {}, config)
    return EvalData(data.spec, f"{data.describe()}, held-out split: {len(data.test)} images",
                    data.test, scale, mean, std)


def _normalisation(data: Dataset, meta: Mapping[str, Any], config: Any) -> tuple[float, list, list]:
    norm = meta.get("normalize")
    if isinstance(norm, Mapping) and isinstance(norm.get("mean"), list) and isinstance(norm.get("std"), list):
        return float(norm.get("scale", data.scale)), [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]]
    if data.name == "imagenet" and config.in_channels == 3:
        return data.scale, list(IMAGENET_MEAN), list(IMAGENET_STD)
    if isinstance(data.train, Split):
        return (data.scale, *channel_stats(data.train, data.scale))
    return (data.scale, *file_stats(data.train))
