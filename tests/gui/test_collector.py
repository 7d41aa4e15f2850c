"""Garbage collection runs on the GUI thread only (densegui/gui/collector.py): a worker thread that
allocates cyclic garbage never runs a collection itself, and its garbage is still collected."""

from __future__ import annotations

import gc
import threading
import weakref

from densegui.gui.collector import MainThreadCollector


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def _collections_while(work) -> list[str]:
    """The names of the threads that started a collection while ``work()`` ran in a worker thread."""
    threads: list[str] = []

    def record(phase, _info) -> None:
        if phase == "start":
            threads.append(threading.current_thread().name)

    gc.callbacks.append(record)
    try:
        worker = threading.Thread(target=work, name="worker")
        worker.start()
        worker.join(60)
    finally:
        gc.callbacks.remove(record)
    return threads


def _allocate() -> None:
    for _ in range(50_000):
        Node()


def test_a_worker_thread_never_collects_and_its_garbage_is_still_freed(qtbot, qapp):
    # The control: with Python's automatic collection (which the autouse fixture's collector has
    # switched off), the worker collects in its own thread.
    was = gc.isenabled()
    gc.enable()
    try:
        assert "worker" in _collections_while(_allocate)
    finally:
        if not was:
            gc.disable()

    collector = MainThreadCollector(qapp)
    collector.start()
    try:
        assert not gc.isenabled()
        assert "worker" not in _collections_while(_allocate)
        probe = Node()
        freed = []
        weakref.finalize(probe, lambda: freed.append(threading.current_thread() is threading.main_thread()))
        del probe
        for _ in range(20):  # gen-0 thresholds need allocations to be crossed
            [Node() for _ in range(1000)]
        qtbot.waitUntil(lambda: bool(freed), timeout=5000)
        assert freed == [True]  # collected, on the GUI thread
    finally:
        collector.stop()
    collector.deleteLater()


def test_stop_restores_automatic_collection(qapp):
    was = gc.isenabled()
    gc.enable()
    collector = MainThreadCollector(qapp)
    collector.start()
    assert not gc.isenabled() and collector.is_active()
    collector.start()  # (a second start changes nothing)
    collector.stop()
    assert gc.isenabled() and not collector.is_active()
    collector.deleteLater()
    if not was:
        gc.disable()
