"""``densegui`` command line: subcommands over :mod:`densegui.core`.

Each subcommand lives in its own module exposing ``register(subparsers)``,
which adds a parser whose ``func(args) -> int`` runs it. The modules import
torch only inside the commands that need it, so ``--help``, ``presets`` and
``gui`` start without it. Errors meant for
the user (:class:`DenseguiError`, argparse errors) print one line on stderr
and exit with code 2, never a traceback. Set ``DENSEGUI_DEBUG=1`` to see the
traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from densegui import __version__
from densegui.cli import compare, graph, gui, presets, probe, reuse, summary, sweep, train
from densegui.core.errors import DenseguiError, first_line

# Subcommand modules, in the order `densegui --help` lists them.
COMMANDS = (presets, summary, compare, graph, sweep, probe, reuse, train, gui)

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="densegui", description="Explore DenseNet architectures (Huang et al., CVPR 2017). Without a COMMAND, "
                                     "densegui opens the window (the same as `densegui gui`, with its options).")
    parser.add_argument("--version", action="version", version=f"densegui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    # Set after add_subparsers, which builds the commands' "densegui NAME" prefix from the usage.
    parser.usage = ("densegui [-h] [--version] COMMAND ...\n"
                    "       densegui [--preset NAME | --config FILE.json] [--screenshot OUT.png] [--tab NAME]")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not args_list or args_list[0].split("=", 1)[0] in gui.OPTIONS:
        # No subcommand: open the window, like double-clicking the app, with the window's options.
        args_list = ["gui", *args_list]
    args = parser.parse_args(args_list)
    try:
        return int(args.func(args) or 0)
    except DenseguiError as exc:
        print(f"densegui: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("densegui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if os.environ.get("DENSEGUI_DEBUG"):
            raise
        print(f"densegui: internal error: {exc.__class__.__name__}: {first_line(exc)} (set DENSEGUI_DEBUG=1 for details)",
              file=sys.stderr)
        return 1
