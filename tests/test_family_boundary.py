"""Outside the family packages no line names a family or tests a family's classes: consumers ask the
family (its words, fields, capabilities), so a new family needs no edit to them."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAMILY_PACKAGES = [ROOT / "densegui" / "core" / "arch" / name for name in ("densenet", "resnet", "rdnet")]
# A family's name as a string, or an isinstance test on a family's module classes.
PATTERN = re.compile(r'"(resnet|densenet)"|isinstance\(.*(ResNet|DenseNet|DenseLayer|DenseBlock|BasicBlock|Bottleneck|'
                     r'Transition)')


def offending_lines(root: pathlib.Path = ROOT / "densegui") -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        if any(pkg in path.parents for pkg in FAMILY_PACKAGES):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if PATTERN.search(line):
                out.append(f"{path.relative_to(root.parent)}:{n}: {line.strip()}")
    return out


def test_no_line_outside_the_family_packages_names_a_family():
    lines = offending_lines()
    assert not lines, "\n".join(lines)


def test_the_check_sees_a_family_name(tmp_path):
    (tmp_path / "m.py").write_text('if cfg.family == "resnet":\n    pass\nok = isinstance(m, DenseLayer)\n')
    assert len(offending_lines(tmp_path)) == 2
