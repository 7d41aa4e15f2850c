"""Model flags shared by ``summary``, ``probe``, ``graph``, ``train`` and ``sweep``: a preset or config
file of any family (``summary``, ``probe`` and ``graph`` also a checkpoint's), then field flags built
from the registered families' fields; a flag of another family is refused in one line."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from densegui.core.arch import registry as arch
from densegui.core.arch.family import Family, Field
from densegui.core.errors import ConfigError


def _ints(example: str):
    def parse(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers like {example}, got {text!r}") from None
    return parse


def join_words(words: list[str], last: str = "or") -> str:
    """"A", "A or B", "A, B or C"."""
    return f" {last} ".join([", ".join(words[:-1]), words[-1]] if len(words) > 2 else words)


def a(title: str) -> str:
    """"a ResNet", "an RDNet": an initial letter spoken with a vowel sound (F, H, L, M, N, R, S, X before
    another capital, as in an acronym) or a vowel takes "an"."""
    acronym = len(title) > 1 and title[0] in "FHLMNRSX" and title[1].isupper()
    return f"{'an' if acronym or title[:1] in 'AEIOU' else 'a'} {title}"


def _families() -> list[Family]:
    return list(arch.families().values())


def _attributes(fam: Family) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(fam.config))


def model_fields() -> dict[str, Field]:
    """Every family's field by flag dest (the first family's definition of a shared one)."""
    found: dict[str, Field] = {}
    for fam in _families():
        for f in fam.fields:
            found.setdefault(f.dest, f)
    return found


def shared_fields() -> list[Field]:
    """The fields several families' configurations have (same name): the "model" flags."""
    return [f for f in model_fields().values() if sum(f.name in _attributes(fam) for fam in _families()) > 1]


def flags_of(fam: Family) -> dict[str, str]:
    """Flag dest → field of every model flag that applies to ``fam``'s configurations."""
    attributes = _attributes(fam)
    return {dest: f.name for dest, f in model_fields().items() if f.name in attributes}


def field_flags() -> list[str]:
    """Every field flag's dest, the "model" group's first (cli/train.py refuses them with --resume)."""
    shared = [f.dest for f in shared_fields()]
    return shared + [dest for dest in model_fields() if dest not in shared]


def _owners(dest: str) -> list[Family]:
    return [fam for fam in _families() if any(f.dest == dest for f in fam.fields)]


def _role(fam: Family, f: Field) -> str:
    # Fields of two families do the same job when both are their family's per-unit depths, or when
    # their help says the same before any parenthesis ("channels out of the stem (…)").
    return "depths" if f.name == fam.depths else f.help.split(" (", 1)[0]


def _hint(f: Field, owner: Family, fam: Family) -> str:
    """"; use --stages" when ``fam`` has a flag for what ``owner``'s ``f`` sets, else ""."""
    role = _role(owner, f)
    same = [g for g in fam.fields if _role(fam, g) == role]
    return f"; use {same[0].option}" if same else ""


def _add(group, f: Field, example: Family) -> None:
    names = [f.option, *([f.short] if f.short else [])]
    kw: dict = {"help": f.help}
    if f.metavar:
        kw["metavar"] = f.metavar
    if f.kind == "bool":
        kw.update(action=argparse.BooleanOptionalAction, default=None)
    elif f.kind in ("depths", "ints"):
        value = getattr(example.presets[example.default_preset].config, f.name, None) or (1, 2, 3)
        kw["type"] = _ints(",".join(map(str, value)))
    elif f.kind == "choice":
        kw["choices"] = f.choices
    elif f.kind == "spec":
        kw["type"] = str  # (the configuration's validate() says what is wrong, in one line)
    else:
        kw["type"] = float if f.kind == "float" else int
    group.add_argument(*names, **kw)


def add_model_args(parser: argparse.ArgumentParser, checkpoint: bool = False) -> None:
    """The model flags; ``checkpoint`` adds ``--checkpoint FILE`` beside ``--preset`` and ``--config``."""
    families = _families()
    default = arch.default_family().default_preset
    g = parser.add_argument_group("model", "start from a preset, a JSON config" + (" or a checkpoint" if checkpoint
                                                                                 else "") + ", then override fields")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--preset", metavar="NAME", help=f"a {join_words([fam.title for fam in families])} preset "
                                                      f"(see `densegui presets`; default {default})")
    src.add_argument("--config", metavar="FILE.json", help="a configuration file: `summary --json`'s config object, or that whole output")
    if checkpoint:
        src.add_argument("--checkpoint", metavar="FILE",
                         help="a checkpoint's network: the configuration a densegui checkpoint stores (any family), "
                              "else the one inferred from the weights (DenseNets of torchvision, timm, MONAI …; "
                              "timm RDNets, also inside timm training checkpoints)")
    shared = shared_fields()
    for f in shared:
        owners = _owners(f.dest)
        if len(owners) < len(families):  # say which families have it
            f = dataclasses.replace(f, help=f"{join_words([fam.title + 's' for fam in owners], 'and')}: {f.help}")
        if f.kind == "choice":  # every owner's choices (a stem: imagenet, cifar, deep; an RDNet's patch)
            others = [(fam, fam.field(f.name)) for fam in owners[1:]]
            extra = [(fam, o) for fam, o in others if set(o.choices) - set(f.choices)]
            choices = tuple(dict.fromkeys([*f.choices, *(c for _, o in others for c in o.choices)]))
            f = dataclasses.replace(f, choices=choices,
                                    help="; ".join([f.help, *(f"{fam.title}s: {o.help}" for fam, o in extra)]))
        _add(g, f, owners[0])
    names = {f.name for f in shared}
    for fam in families:
        own = [f for f in fam.fields if f.name not in names]
        if own:
            group = parser.add_argument_group(fam.title, f"fields of {a(fam.title)} configuration")
            for f in own:
                _add(group, f, fam)


def checkpoint_config(path: str) -> arch.Config:
    """The configuration of the network in checkpoint ``path`` (stored, else inferred), read safely;
    what the loader could not recognise goes to stderr as notes. One line (CheckpointError) otherwise."""
    from densegui.core.weights.checkpoint import load_checkpoint

    loaded = load_checkpoint(path)
    for note in loaded.notes:
        print(f"densegui: note: {note}.", file=sys.stderr)
    return loaded.config


def config_from_args(args: argparse.Namespace, default: arch.Config | None = None,
                     need: str | None = None) -> arch.Config:
    """The validated configuration the model flags describe: ``--config``, else ``--checkpoint``,
    else ``--preset`` (any family), else ``default`` (or the default preset), with the field flags
    applied on top. A flag of another family is a ConfigError naming both; so is a family without
    the capability ``need``."""
    if getattr(args, "config", None):
        base = arch.config_from_file(args.config)
    elif getattr(args, "checkpoint", None):
        base = checkpoint_config(args.checkpoint)
    elif getattr(args, "preset", None):
        base = arch.get_preset(args.preset)
    elif default is None:
        base = arch.default_config()
    else:
        base = default
    family = arch.family_of(base)
    if need is not None and not family.can(need):
        takes = join_words([fam.title for fam in _families() if fam.can(need)])
        raise ConfigError(f"this command takes a {takes}, but {base.label()} is {a(family.title)}.")
    applies = flags_of(family)
    for dest, f in model_fields().items():
        if dest not in applies and getattr(args, dest, None) is not None:
            owners = _owners(dest)
            raise ConfigError(f"{f.option} is a {join_words([fam.title for fam in owners])} flag, but this "
                              f"configuration is {a(family.title)}{_hint(f, owners[0], family)}.")
    changes = {name: getattr(args, dest) for dest, name in applies.items() if getattr(args, dest, None) is not None}
    try:
        return base.replace(**changes).validate()
    except TypeError as exc:  # pragma: no cover - replace() only gets known fields
        raise ConfigError(str(exc)) from None
