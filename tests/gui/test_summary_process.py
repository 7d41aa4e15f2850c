"""The summary child process: results, errors, and cancellation of stale jobs."""

from __future__ import annotations

import threading
import time

import pytest

from densegui.core.config import get_preset
from densegui.core.errors import DenseguiError
from densegui.core.stats import layer_table
from densegui.gui.summary_process import SummaryCancelled, SummaryServer

BIG = get_preset("densenet264").replace(growth_rate=64)  # ≈ 0.5 s of torchinfo at depth 4 on 2 cores


@pytest.fixture(scope="module")
def server():
    s = SummaryServer()
    s.call(get_preset("densenet-40-k12"), 1)  # started and warm
    yield s
    s.close()


def start_call(server, cfg, depth, tag) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = server.call(cfg, depth, tag)
        except Exception as exc:  # noqa: BLE001
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while server._in_flight is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert server._in_flight == tag
    return thread, outcome


def test_result_and_error(server):
    cfg = get_preset("densenet-bc-100-k12")
    result = server.call(cfg, 2)
    assert result.config == cfg and result.total_params == layer_table(cfg).params
    bad = cfg.replace(input_size=2)  # validated in the child: too small for the stem and transitions
    with pytest.raises(DenseguiError, match="too small"):
        server.call(bad, 2)
    assert not server.cancel("nobody", 10)  # idle: nothing to stop


def test_cancel_stops_a_running_stale_job_and_keeps_the_child(server):
    pid, before = server._proc.pid, server.cancelled
    thread, outcome = start_call(server, BIG, 4, ("a", 1))
    # (cancelled as soon as it is in flight: the request always lands before the end of this
    # computation; the child sees it at the next layer)
    assert server.cancel("a", 2)
    assert not server.cancel("a", 3)  # one stop request per computation
    thread.join(60)
    assert isinstance(outcome.get("error"), SummaryCancelled), outcome
    assert server.cancelled == before + 1
    # The same (warm) child serves the next request, with the right numbers.
    small = get_preset("densenet121").replace(growth_rate=12)
    result = server.call(small, 2, ("a", 3))
    assert server._proc.pid == pid
    assert result.config == small and result.total_params == layer_table(small).params
    # A stop request that reaches the child after its computation ended is ignored.
    with server._send:
        server._conn.send("cancel")
    assert server.call(small, 1, ("a", 4)).config == small


def test_a_stale_job_is_refused_before_it_is_sent(server):
    before = server.cancelled
    server.cancel("b", 5)
    with pytest.raises(SummaryCancelled):
        server.call(get_preset("densenet-40-k12"), 1, ("b", 4))
    assert server.cancelled == before + 1
    assert server.call(get_preset("densenet-40-k12"), 1, ("b", 5)).depth == 1  # the newest one runs
    assert server.call(get_preset("densenet-40-k12"), 1, ("c", 0)).depth == 1  # other owners unaffected


def test_a_late_cancel_never_stops_a_newer_job(server):
    """The race a reviewer found: a cancel for generation < 8 arriving while generation 8 runs."""
    thread, outcome = start_call(server, BIG, 4, ("d", 8))
    assert not server.cancel("d", 8)  # 8 is not below 8: the running job is current
    assert not server.cancel("e", 100)  # another owner's marks do not touch it
    thread.join(60)
    assert outcome["result"].config == BIG


def test_load_reuse_returns_the_reference_matrices_without_the_weights(server, tmp_path):
    """A checkpoint is loaded and its Figure-5 matrices computed in the child; what comes back equals
    the reference definition applied to the weights written here, and carries no weights."""
    import sys
    from pathlib import Path

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_checkpoint_corpus import SMALL_BC, known_state_dict, write_bad, write_good
    from test_reuse_metric import naive_matrices

    sd = known_state_dict(SMALL_BC, seed=5)
    path = write_good("state_dict", tmp_path / "a.pt", sd, SMALL_BC)
    loaded, blocks = server.load_reuse(str(path), ("r", 1))
    assert loaded.state_dict == {} and Path(loaded.path) == path and loaded.inferred
    assert loaded.config.block_depths == SMALL_BC.block_depths
    for got, want in zip(blocks, naive_matrices(sd), strict=True):
        np.testing.assert_allclose(got.matrix, want, rtol=1e-5, equal_nan=True)
    # Bad and hostile files: the same one-line messages as loading in-process, nothing executed.
    for name in ("hostile-pickle", "truncated", "missing-classifier"):
        bad, phrase = write_bad(name, tmp_path)
        with pytest.raises(DenseguiError) as info:
            server.load_reuse(str(bad), ("r", 2))
        assert phrase.lower() in str(info.value).lower() and "\n" not in str(info.value)
    assert not (tmp_path / "MARKER").exists()
    # A load made stale before its turn is refused.
    server.cancel("r", 10)
    with pytest.raises(SummaryCancelled):
        server.load_reuse(str(path), ("r", 9))
