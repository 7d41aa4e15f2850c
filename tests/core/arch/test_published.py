"""Published results: every preset has them, they are the numbers REFERENCE.md gives (parsed from
that file where it is present), errors are comparable, and the paper's Figure 3 relation holds."""

from __future__ import annotations

import pathlib
import re

import pytest

from densegui.core.arch import registry as arch
from densegui.core.errors import ConfigError
from densegui.core.arch.published import DATASETS, PUBLISHED, Published, published_error

REFERENCE = pathlib.Path(__file__).resolve().parents[4] / "shared" / "REFERENCE.md"


def test_every_preset_of_both_families_has_published_results():
    assert set(PUBLISHED) == set(arch.PRESETS)
    for name, results in PUBLISHED.items():
        assert results and all(isinstance(p, Published) and p.dataset in DATASETS and p.source for p in results)
        assert arch.PRESETS[name].published == results
        assert len({(p.dataset, p.metric) for p in results}) == len(results)  # one value per dataset and metric
        assert all(0 < p.value < 100 for p in results)


def _reference_values() -> dict[tuple[str, str, str, str], float]:
    """(preset, dataset, metric, source kind) → value, parsed from REFERENCE.md's prose."""
    text = REFERENCE.read_text(encoding="utf-8")
    out = {}
    n = r"(\d+(?:\.\d+)?)"  # a number, not the full stop after it
    num = rf"({n[1:-1]}|–)"
    for m in re.finditer(rf"(densenet[-\w]+) {num} / {num} / {num} / {num} / {num}", text):
        for dataset, value in zip(("C10", "C10+", "C100", "C100+", "SVHN"), m.groups()[1:]):
            if value != "–":
                out[(m.group(1), dataset, "error", "Table 2")] = float(value)
    for m in re.finditer(rf"DenseNet-(\d+) {n} / {n}, {n} / {n}", text):
        name = f"densenet{m.group(1)}"
        for metric, value in zip(("top-1 error", "top-5 error", "top-1 error (10-crop)", "top-5 error (10-crop)"),
                                 m.groups()[1:]):
            out[(name, "ImageNet", metric, "Table 3")] = float(value)
    for m in re.finditer(rf"((?:densenet|resnet)\d+) {n} / {n}", text):
        out[(m.group(1), "ImageNet", "top-1 accuracy", "torchvision")] = float(m.group(2))
        out[(m.group(1), "ImageNet", "top-5 accuracy", "torchvision")] = float(m.group(3))
    for m in re.finditer(rf"ResNet-(\d+) {n} / {n}", text):
        out[(f"resnet{m.group(1)}", "ImageNet", "top-1 error", "fb.resnet.torch")] = float(m.group(2))
        out[(f"resnet{m.group(1)}", "ImageNet", "top-5 error", "fb.resnet.torch")] = float(m.group(3))
    for m in re.finditer(rf"ResNet-(\d+) {n} \({n}M\)", text):
        out[(f"resnet{m.group(1)}", "C10+", "error", "He et al.")] = float(m.group(2))
    m = re.search(rf"ImageNet-1K top-1: {n} / {n} / {n} / {n} %", text)  # the RDNets (tiny … large)
    if m:
        for size, value in zip(("tiny", "small", "base", "large"), m.groups()):
            out[(f"rdnet-{size}", "ImageNet", "top-1 accuracy", "Kim et al.")] = float(value)
    return out


@pytest.mark.skipif(not REFERENCE.exists(), reason="../shared/REFERENCE.md is not next to this checkout")
def test_values_are_reference_md_s():
    expected = _reference_values()
    assert len(expected) == sum(len(v) for v in PUBLISHED.values())  # the parser found every number
    got = {(name, p.dataset, p.metric, kind): p.value
           for name, results in PUBLISHED.items() for p in results
           for kind in ("Table 2", "Table 3", "torchvision", "fb.resnet.torch", "He et al.", "Kim et al.")
           if kind in p.source}
    assert got == expected


def test_a_few_values_by_hand():
    by = {(p.dataset, p.metric): p.value for p in PUBLISHED["densenet-bc-250-k24"]}
    assert by[("C10+", "error")] == 3.62 and by[("C100+", "error")] == 17.60
    assert ("C10", "error") not in {(p.dataset, p.metric) for p in PUBLISHED["densenet-bc-190-k40"]}  # "–"
    assert {(p.metric, p.value) for p in PUBLISHED["resnet101"]} >= {("top-1 error", 22.44), ("top-1 accuracy", 77.374)}


def test_published_error_prefers_single_crop_top1_and_converts_accuracy():
    p = published_error("densenet121", "ImageNet")
    assert (p.metric, p.value) == ("top-1 error", 25.02) and "single-crop" in p.source
    assert published_error("resnet50", "ImageNet").value == 24.01  # fb.resnet.torch, as Figure 3 uses
    converted = published_error("densenet161", "ImageNet")  # only torchvision's acc@1 77.138
    assert converted.metric == "top-1 error" and converted.value == pytest.approx(100 - 77.138)
    assert "100 − top-1 accuracy 77.138" in converted.source and "torchvision" in converted.source
    assert published_error("resnet20", "C10+").value == 8.75 and published_error("resnet20", "ImageNet") is None
    assert published_error("densenet-40-k12", "SVHN").value == 1.79
    assert published_error("no-such-preset", "C10+") is None
    with pytest.raises(ConfigError, match="unknown dataset 'CIFAR'"):
        published_error("resnet20", "CIFAR")


def test_every_dataset_has_a_frontier():
    for dataset in DATASETS:
        assert sum(published_error(n, dataset) is not None for n in arch.PRESETS) >= 5, dataset


def _frontier(dataset: str, family: str, measure: str) -> list[tuple[float, float, str]]:
    out = []
    for name in arch.preset_names(family):
        p = published_error(name, dataset)
        if p is not None:
            out.append((getattr(arch.layer_table(arch.get_preset(name)), measure), p.value, name))
    return out


@pytest.mark.parametrize("measure", ["params", "macs"])
def test_figure3_densenets_lie_left_of_resnets_at_equal_error(measure):
    """Paper Figure 3 (ImageNet, from published numbers): for every ResNet there is a DenseNet with no
    higher top-1 error and fewer parameters / MACs. (By MACs only for the ResNets whose error is within
    the DenseNets' range: ResNet-18, at 30.4%, is cheaper than any DenseNet and much worse.)"""
    densenets = _frontier("ImageNet", "densenet", measure)
    resnets = _frontier("ImageNet", "resnet", measure)
    assert len(densenets) == 5 and len(resnets) == 5
    worst_densenet = max(e for _, e, _ in densenets)
    for x, error, name in resnets:
        if measure == "macs" and error > worst_densenet:
            continue
        assert any(dx < x and de <= error for dx, de, _ in densenets), name
    # the paper's headline: DenseNet-201 (20M) is within 0.2 points of ResNet-101 (44.5M)
    (x201, e201, _), = [d for d in densenets if d[2] == "densenet201"]
    (x101, e101, _), = [r for r in resnets if r[2] == "resnet101"]
    assert x201 < x101 / 2 if measure == "params" else x201 < x101
    assert abs(e201 - e101) < 0.2
