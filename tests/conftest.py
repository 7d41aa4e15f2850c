"""Fixtures shared by the core tests (the Qt ones are in tests/gui/conftest.py)."""

from __future__ import annotations

import os
import pathlib

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is much faster (and steadier on a loaded 2-core box).

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TOY_FAMILY = pathlib.Path(__file__).parent / "helpers" / "toyfamily"


@pytest.fixture
def toy_family(monkeypatch):
    """ToyNet (tests/helpers/toyfamily), a third family found through the ``densegui.families``
    entry points of a distribution on ``sys.path``, as a user's installed package would be; child
    processes find it through PYTHONPATH. Registered for one test, then forgotten."""
    from densegui.core.arch import registry

    monkeypatch.syspath_prepend(str(TOY_FAMILY))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TOY_FAMILY), os.environ.get("PYTHONPATH")])))
    families = registry.reload()
    assert "toynet" in families, "the toy family's entry point was not found"
    yield families["toynet"]
    monkeypatch.undo()
    registry.reload()
