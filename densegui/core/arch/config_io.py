"""Reading and checking configurations, shared by every family (torch-free): JSON with one-line
errors, a ``summary --json`` output accepted as a config, and the field checks' wording."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from densegui.core.errors import ConfigError, first_line


# Allowed ranges (inclusive) of the fields every built-in family has (their Fields: arch/fields.py).
SHARED_LIMITS: dict[str, tuple[int, int]] = {
    "in_channels": (1, 64),
    "num_classes": (1, 100_000),
    "input_size": (1, 2048),
}


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def show(value: Any) -> str:
    """``repr(value)``, shortened so that an error message stays one short line."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long for str()
        return "a very large integer"
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(name: str, value: Any, lo: int, hi: int) -> None:
    """ConfigError unless ``value`` is an integer in [lo, hi] (``name`` is what the message calls it)."""
    if not is_int(value):
        raise ConfigError(f"{name} must be an integer from {lo} to {hi}, got {show(value)}.")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be from {lo} to {hi}, got {show(value)}.")


def read_config_text(path: str | Path) -> tuple[Path, str]:
    """The path and text of a configuration file, with one-line :class:`ConfigError` messages."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"configuration file {str(p)!r} does not exist.")
    if p.is_dir():
        raise ConfigError(f"configuration file {str(p)!r} is a directory.")
    try:
        return p, p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {str(p)!r}: {exc.__class__.__name__}.") from None


def parse_config_json(text: str) -> Any:
    """``json.loads`` with one-line :class:`ConfigError` messages."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"configuration is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
    except (ValueError, RecursionError) as exc:  # integers over 4300 digits, absurdly deep nesting
        raise ConfigError(f"configuration is not usable JSON ({exc.__class__.__name__}: {first_line(exc, 80)}).") from None


def unwrap_summary_json(data: Any, fields: set[str] | frozenset[str]) -> Any:
    """``data``, or its "config" object when ``data`` is a whole ``densegui summary/reuse --json``
    output (a "config" object and none of ``fields`` at the top level), so that
    ``summary --json > net.json; summary --config net.json`` works."""
    if isinstance(data, dict) and isinstance(data.get("config"), dict) and not set(data) & fields:
        return data["config"]
    return data


def config_from_file_with(from_json, path: str | Path):
    """``from_json`` applied to the file at ``path``; errors name the file (one line)."""
    p, text = read_config_text(path)
    try:
        return from_json(text)
    except ConfigError as exc:
        raise ConfigError(f"{p.name}: {exc}") from None


def check_fields(data: Any, cls: type, family: str, title: str) -> dict:
    """The values of a config mapping for ``cls(**values)``: a JSON object whose "family" (optional)
    is ``family`` and whose keys are ``cls``'s fields (a typo must not fall back to a default)."""
    import dataclasses

    if not isinstance(data, dict):
        raise ConfigError(f"a configuration must be a JSON object, got {type(data).__name__}.")
    values = dict(data)
    given = values.pop("family", family)
    if given != family:
        raise ConfigError(f"family must be {family!r} for a {title or family} configuration, got {show(given)}.")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {title + ' ' if title else ''}configuration field {show(unknown[0])}; "
                          f"valid fields: family, {', '.join(sorted(names))}.")
    return values


def tuple_field(values: dict, name: str) -> None:
    """``values[name]`` as a tuple (JSON gives lists); ConfigError when it is no list."""
    if name in values:
        if not isinstance(values[name], (list, tuple)):
            raise ConfigError(f"{name} must be a list of integers, got {show(values[name])}.")
        values[name] = tuple(values[name])


class ConfigIO:
    """JSON for a frozen configuration dataclass: ``to_dict``/``to_json``, ``from_dict`` (validated;
    unknown fields are an error, missing ones take the defaults), ``from_json``/``from_file`` and
    ``replace``. A family's config class sets the class variables below."""

    family: str  # ClassVar on the config class
    title: str = ""  # the word in "unknown <title> configuration field" ("" for the default family)
    tuple_fields: tuple[str, ...] = ()  # fields stored as tuples, written as JSON lists
    json_family: bool = True  # to_dict() starts with "family"
    unwrap_key: str = ""  # a field only this family has: tells a config object from a summary output

    def to_dict(self) -> dict[str, Any]:
        import dataclasses

        d = dataclasses.asdict(self)
        for name in self.tuple_fields:
            d[name] = list(d[name])
        return {"family": self.family, **d} if self.json_family else d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any):
        values = check_fields(data, cls, cls.family, cls.title)
        for name in cls.tuple_fields:
            tuple_field(values, name)
        return cls(**values).validate()

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(unwrap_summary_json(parse_config_json(text), {cls.unwrap_key}))

    @classmethod
    def from_file(cls, path: str | Path):
        return config_from_file_with(cls.from_json, path)

    def replace(self, **changes: Any):
        """A copy with ``changes`` applied (not validated; call ``validate``)."""
        import dataclasses

        return dataclasses.replace(self, **changes)
