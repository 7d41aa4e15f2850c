"""The fields every built-in family shares, and their limits: one definition, so that the CLI's shared
flags and the explorer's shared controls mean the same in each family."""

from __future__ import annotations

from densegui.core.arch.config_io import SHARED_LIMITS
from densegui.core.arch.family import Field


def shared_fields(stems: tuple[str, ...], stem_help: str) -> tuple[Field, ...]:
    """The stem (with the family's choices) and the input and output fields."""
    return (
        Field("stem", "stem", "choice", stem_help, choices=stems, sweep=False),
        Field("in_channels", "input channels", "int", "input image channels", *SHARED_LIMITS["in_channels"],
              sweep=False),
        Field("num_classes", "classes", "int", "classifier outputs", *SHARED_LIMITS["num_classes"], log=True),
        Field("input_size", "input size", "int", "input image side in pixels", *SHARED_LIMITS["input_size"],
              run_setting=True, log=True),
    )
