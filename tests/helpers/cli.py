"""Running the CLI in-process for tests: ``run(argv, capsys) -> (exit code, stdout, stderr)``."""

from __future__ import annotations

from densegui.cli import main


def run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
