"""Published accuracy of every preset (values from ../shared/REFERENCE.md), torch-free.

Sources: the DenseNet paper (Huang et al. 2017) Tables 2 and 3; torchvision's model cards
(ImageNet-1K validation, IMAGENET1K_V1 weights); fb.resnet.torch's ResNets as the DenseNet
paper's Figure 3 plots them; He et al. 2016 Table 6 (CIFAR-10 ResNets, option A shortcuts);
Kim et al. 2024 for the RDNets.

Values are percentages. Metrics: "error" (CIFAR/SVHN test error), "top-1 error" and
"top-5 error" (ImageNet, single-crop), "top-1 error (10-crop)" and "top-5 error (10-crop)",
"top-1 accuracy" and "top-5 accuracy" (torchvision's acc@1 / acc@5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from densegui.core.errors import ConfigError

# "+": standard augmentation (mirroring and shifting).
DATASETS = ("ImageNet", "C10", "C10+", "C100", "C100+", "SVHN")


@dataclass(frozen=True)
class Published:
    dataset: str  # one of DATASETS
    metric: str
    value: float  # %
    source: str

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "metric": self.metric, "value": self.value, "source": self.source}


_T2 = "Huang et al. 2017, Table 2"
_T3 = "Huang et al. 2017, Table 3"
_TV = "torchvision model card (IMAGENET1K_V1)"
_FB = "fb.resnet.torch, as in Huang et al. 2017 Figure 3 (single-crop)"
_HE = "He et al. 2016, Table 6 (option A shortcuts)"
_RD = "Kim et al. 2024 (DenseNets Reloaded, ECCV), ImageNet-1K at 224²"


def _table2(c10: float | None, c10p: float, c100: float | None, c100p: float, svhn: float | None) -> tuple[Published, ...]:
    values = zip(("C10", "C10+", "C100", "C100+", "SVHN"), (c10, c10p, c100, c100p, svhn))
    return tuple(Published(d, "error", v, _T2) for d, v in values if v is not None)  # "–" in the paper: left out


def _table3(top1: float, top5: float, top1_10: float, top5_10: float) -> tuple[Published, ...]:
    return (Published("ImageNet", "top-1 error", top1, f"{_T3} (single-crop)"),
            Published("ImageNet", "top-5 error", top5, f"{_T3} (single-crop)"),
            Published("ImageNet", "top-1 error (10-crop)", top1_10, f"{_T3} (10-crop)"),
            Published("ImageNet", "top-5 error (10-crop)", top5_10, f"{_T3} (10-crop)"))


def _card(acc1: float, acc5: float) -> tuple[Published, ...]:
    return (Published("ImageNet", "top-1 accuracy", acc1, _TV), Published("ImageNet", "top-5 accuracy", acc5, _TV))


def _fb(top1: float, top5: float) -> tuple[Published, ...]:
    return (Published("ImageNet", "top-1 error", top1, _FB), Published("ImageNet", "top-5 error", top5, _FB))


PUBLISHED: dict[str, tuple[Published, ...]] = {
    "densenet121": _table3(25.02, 7.71, 23.61, 6.66) + _card(74.434, 91.972),
    "densenet161": _card(77.138, 93.560),
    "densenet169": _table3(23.80, 6.85, 22.08, 5.92) + _card(75.600, 92.806),
    "densenet201": _table3(22.58, 6.34, 21.46, 5.54) + _card(76.896, 93.370),
    "densenet264": _table3(22.15, 6.12, 20.80, 5.29),
    "densenet-40-k12": _table2(7.00, 5.24, 27.55, 24.42, 1.79),
    "densenet-100-k12": _table2(5.77, 4.10, 23.79, 20.20, 1.67),
    "densenet-100-k24": _table2(5.83, 3.74, 23.42, 19.25, 1.59),
    "densenet-bc-100-k12": _table2(5.92, 4.51, 24.15, 22.27, 1.76),
    "densenet-bc-250-k24": _table2(5.19, 3.62, 19.64, 17.60, 1.74),
    "densenet-bc-190-k40": _table2(None, 3.46, None, 17.18, None),
    "resnet18": _fb(30.43, 10.76) + _card(69.758, 89.078),
    "resnet34": _fb(26.73, 8.74) + _card(73.314, 91.420),
    "resnet50": _fb(24.01, 7.02) + _card(76.130, 92.862),
    "resnet101": _fb(22.44, 6.21) + _card(77.374, 93.546),
    "resnet152": _fb(22.16, 6.16) + _card(78.312, 94.046),
    "resnet20": (Published("C10+", "error", 8.75, _HE),),
    "resnet32": (Published("C10+", "error", 7.51, _HE),),
    "resnet44": (Published("C10+", "error", 7.17, _HE),),
    "resnet56": (Published("C10+", "error", 6.97, _HE),),
    "resnet110": (Published("C10+", "error", 6.43, _HE),),
    # RDNet ("DenseNets Reloaded"): the paper's ImageNet-1K top-1 at 224², as timm's weights reproduce.
    "rdnet-tiny": (Published("ImageNet", "top-1 accuracy", 82.8, _RD),),
    "rdnet-small": (Published("ImageNet", "top-1 accuracy", 83.7, _RD),),
    "rdnet-base": (Published("ImageNet", "top-1 accuracy", 84.4, _RD),),
    "rdnet-large": (Published("ImageNet", "top-1 accuracy", 84.8, _RD),),
}

# Comparable error metrics, most preferred first: the single-crop top-1 error the DenseNet paper's
# Figure 3 plots (its Table 3, fb.resnet.torch), then a CIFAR/SVHN test error.
_ERRORS = ("top-1 error", "error")


def published_error(name: str, dataset: str) -> Published | None:
    """A comparable error % of preset ``name`` on ``dataset``, or None if nothing was published.

    Prefers a single-crop top-1 error (or a CIFAR/SVHN "error"); otherwise converts a top-1
    accuracy to 100 − accuracy, saying so in ``source``. The result's ``metric`` says which.
    """
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; valid datasets: {', '.join(DATASETS)}.")
    results = [p for p in PUBLISHED.get(name, ()) if p.dataset == dataset]
    for metric in _ERRORS:
        for p in results:
            if p.metric == metric:
                return p
    for p in results:
        if p.metric == "top-1 accuracy":
            return Published(dataset, "top-1 error", round(100.0 - p.value, 6),
                             f"100 − top-1 accuracy {p.value:g} ({p.source})")
    return None


@dataclass(frozen=True)
class Preset:
    name: str
    config: Any  # the family's validated configuration
    description: str
    params: int  # published parameter count: exact for torchvision/timm, else rounded as published
    exact: bool = False
    source: str = ""
    family: str = ""  # "": the configuration's own family
    # Published results (PUBLISHED); None: looked up by name there.
    published: tuple[Published, ...] | None = None

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", self.config.family)
        if self.published is None:
            object.__setattr__(self, "published", PUBLISHED.get(self.name, ()))
