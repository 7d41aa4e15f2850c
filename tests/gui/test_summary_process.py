"""The summary child process: results, errors, and cooperative cancellation."""

from __future__ import annotations

import threading
import time

import pytest

from densegui.core.config import get_preset
from densegui.core.errors import DenseguiError
from densegui.core.stats import layer_table
from densegui.gui.summary_process import SummaryCancelled, SummaryServer


@pytest.fixture(scope="module")
def server():
    s = SummaryServer()
    yield s
    s.close()


def test_result_and_error(server):
    cfg = get_preset("densenet-bc-100-k12")
    result = server.call(cfg, 2)
    assert result.config == cfg and result.total_params == layer_table(cfg).params
    bad = cfg.replace(input_size=2)  # validated in the child: too small for the stem and transitions
    with pytest.raises(DenseguiError, match="too small"):
        server.call(bad, 2)
    assert not server.cancel()  # idle: nothing to cancel


def test_cancel_stops_a_running_summary_and_keeps_the_child(server):
    big = get_preset("densenet264").replace(growth_rate=64)  # several seconds of torchinfo
    server.call(get_preset("densenet-40-k12"), 1)  # child started and warm
    pid = server._proc.pid
    outcome = {}

    def run():
        try:
            outcome["result"] = server.call(big, 4)
        except Exception as exc:  # noqa: BLE001
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while not server._in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    # (cancelled as soon as it is in flight: this computation takes about a second on a 2-core
    # machine, so the request always lands before its end; the child sees it at the first layer)
    t0 = time.perf_counter()
    assert server.cancel()
    assert not server.cancel()  # one request per computation
    thread.join(60)
    stopped_after = time.perf_counter() - t0
    assert isinstance(outcome.get("error"), SummaryCancelled), outcome
    # The same (warm) child serves the next request, with the right numbers.
    small = get_preset("densenet121").replace(growth_rate=12)
    result = server.call(small, 2)
    assert server._proc.pid == pid
    assert result.config == small and result.total_params == layer_table(small).params
    print(f"cancelled {stopped_after * 1000:.0f} ms after the request")
    # A cancel that arrives after its computation finished is ignored by the idle child.
    with server._send:
        server._conn.send("cancel")
    assert server.call(small, 1).config == small
