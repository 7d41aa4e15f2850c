"""Formatting helpers shared by the CLI and the GUI."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """``1536 -> '1.50 KiB'`` (binary units, 3 significant digits)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        # below 999.5 so that "%.3g" never rounds up to four digits ("1.02e+03 MiB")
        if abs(value) < (1024 if unit == "B" else 999.5) or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_count(n: float) -> str:
    """``7978856 -> '7.98M'``."""
    value = float(n)
    for unit in ("", "K", "M", "G", "T"):
        if abs(value) < 999.5 or unit == "T":
            return f"{value:.0f}" if unit == "" else f"{value:.3g}{unit}"
        value /= 1000
    raise AssertionError("unreachable")
