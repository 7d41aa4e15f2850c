"""Where the files shipped in ``resources/`` are, installed or in a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def resource_path(name: str) -> Path:
    """Path of a shipped resource file (it may not exist yet)."""
    try:
        base = Path(str(resources.files("densegui.resources")))
    except ModuleNotFoundError:  # running from a checkout without installing
        base = Path(__file__).resolve().parents[2] / "resources"
    return base / name
