"""``densegui gui``: open the explorer window (``densegui`` alone does the same, with the same options).

On Linux the window needs a display and a few system libraries; :func:`densegui.gui.app.check_startup`
says so in one line (exit 2) before Qt starts, instead of Qt's abort or an invisible window.
"""

from __future__ import annotations

from pathlib import Path

from densegui.core.arch import registry as arch
from densegui.core.arch.densenet.config import PRESETS, DenseNetConfig
from densegui.core.arch.registry import get_preset
from densegui.core.errors import ConfigError


# The window's options, which `densegui` alone accepts too (`densegui --preset densenet121`).
OPTIONS = ("--preset", "--config", "--screenshot", "--tab")
TABS = ("channels", "summary", "reuse", "probe", "train", "design")  # MainWindow.TABS (no Qt import here)


def register(sub) -> None:
    p = sub.add_parser("gui", help="open the DenseNet explorer window")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", metavar="NAME", help="start from this preset (see `densegui presets`)")
    src.add_argument("--config", metavar="FILE.json", help="start from this configuration file (the CLI's format)")
    p.add_argument("--screenshot", metavar="OUT.png",
                   help="render offscreen once every panel is up to date, save the window as PNG and exit")
    p.add_argument("--tab", choices=TABS, help="the tab to show (with --screenshot: the one captured)")
    p.set_defaults(func=run)


def _not_a_densenet(what: str) -> ConfigError:
    """The explorer's controls shape DenseNets: a ResNet is refused, saying where it can be seen."""
    return ConfigError(f"{what} is a ResNet; the explorer shapes DenseNets. Pin it as the baseline from the window's "
                       f"Compare menu, or see it with 'densegui summary' or 'densegui compare'.")


def run(args) -> int:
    # Bad input is reported before any window opens (one line, exit 2).
    cfg: DenseNetConfig | None = None
    if args.config:
        loaded = arch.config_from_file(args.config)
        if not isinstance(loaded, DenseNetConfig):
            raise _not_a_densenet(Path(args.config).name)
        cfg = loaded
    elif args.preset:
        if args.preset in arch.PRESETS and args.preset not in PRESETS:
            raise _not_a_densenet(repr(args.preset))
        cfg = get_preset(args.preset)  # (an unknown name: the DenseNet presets listed)
    if args.screenshot:
        out = Path(args.screenshot)
        if out.is_dir():
            raise ConfigError(f"--screenshot {args.screenshot!r} is a directory; give a .png file name.")
        if not out.parent.exists():
            raise ConfigError(f"--screenshot: folder {str(out.parent)!r} does not exist.")
    from densegui.gui.app import run_app

    return run_app(cfg, preset=args.preset, screenshot=args.screenshot, tab=args.tab)
