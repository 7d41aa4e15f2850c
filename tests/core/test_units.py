"""Human-readable sizes and counts: never scientific notation, always close to the value."""

from __future__ import annotations

import random

import pytest

from densegui.core.units import human_bytes, human_count

BYTE_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
COUNT_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def _values():
    rng = random.Random(0)
    edges = [0, 1, 999, 999.4, 999.6, 1000, 1023, 1024, 1025]
    for scale in (1, 2**10, 2**20, 2**30, 1e3, 1e6, 1e9):
        edges += [e * scale for e in (999.4, 999.5, 999.6, 1000, 1020, 1023.9, 1024)]
    return edges + [10 ** rng.uniform(0, 14) for _ in range(300)]


@pytest.mark.parametrize("n", _values())
def test_human_bytes_parses_back_close_to_the_value(n):
    text = human_bytes(n)
    assert "e" not in text.split()[0], text  # "1.02e+03 MiB" was printed for 1,020 MiB
    number, unit = text.split()
    value = float(number) * BYTE_UNITS[unit]
    assert value == pytest.approx(n, rel=5e-3, abs=0.5)
    assert float(number) < 1000 or unit in ("B", "TiB")


@pytest.mark.parametrize("n", _values())
def test_human_count_parses_back_close_to_the_value(n):
    text = human_count(n)
    unit = text[-1] if text[-1] in "KMGT" else ""
    number = text[:-1] if unit else text
    assert "e" not in number, text
    assert float(number) * COUNT_UNITS[unit] == pytest.approx(n, rel=5e-3, abs=0.5)
