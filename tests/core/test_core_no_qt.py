"""densegui.core must stay importable and usable without Qt."""

import ast
import pathlib
import subprocess
import sys

CORE = pathlib.Path(__file__).resolve().parents[2] / "densegui" / "core"
FORBIDDEN = ("PySide6", "pyqtgraph", "superqt", "PyQt5", "PyQt6", "qtpy", "densegui.gui")


def test_no_qt_import_statements_in_core():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN or n.startswith("densegui.gui")]
    assert offenders == []


def test_core_import_loads_no_qt_module():
    code = (
        "import sys, importlib, pkgutil, densegui.core as c\n"
        "for m in pkgutil.iter_modules(c.__path__): importlib.import_module('densegui.core.' + m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'superqt')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
