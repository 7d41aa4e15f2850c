"""``densegui gui``: open the explorer window (``densegui`` alone does the same, with the same options).

On Linux the window needs a display and a few system libraries; :func:`densegui.gui.app.check_startup`
says so in one line (exit 2) before Qt starts, instead of Qt's abort or an invisible window.
"""

from __future__ import annotations

from pathlib import Path

from densegui.core.arch import registry as arch
from densegui.core.errors import ConfigError
from densegui.gui import TABS, cannot_explore

# The window's options, which `densegui` alone accepts too (`densegui --preset densenet121`).
OPTIONS = ("--preset", "--config", "--screenshot", "--tab")


def register(sub) -> None:
    p = sub.add_parser("gui", help="open the explorer window")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", metavar="NAME", help="start from this preset, of any family (see `densegui presets`)")
    src.add_argument("--config", metavar="FILE.json", help="start from this configuration file (the CLI's format)")
    p.add_argument("--screenshot", metavar="OUT.png",
                   help="render offscreen once every panel is up to date, save the window as PNG and exit")
    p.add_argument("--tab", choices=TABS, help="the tab to show (with --screenshot: the one captured)")
    p.set_defaults(func=run)


def run(args) -> int:
    # Bad input is reported before any window opens (one line, exit 2).
    cfg = None
    if args.config:
        cfg = arch.config_from_file(args.config)
    elif args.preset:
        cfg = arch.get_preset(args.preset)
    if cfg is not None and (refusal := cannot_explore(cfg)) is not None:
        raise ConfigError(refusal)
    if args.screenshot:
        out = Path(args.screenshot)
        if out.is_dir():
            raise ConfigError(f"--screenshot {args.screenshot!r} is a directory; give a .png file name.")
        if not out.parent.exists():
            raise ConfigError(f"--screenshot: folder {str(out.parent)!r} does not exist.")
    from densegui.gui.app import run_app

    origin = Path(args.config).name if args.config else None
    return run_app(cfg, preset=args.preset, screenshot=args.screenshot, tab=args.tab, origin=origin)
