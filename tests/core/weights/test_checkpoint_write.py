"""Writing checkpoints (issue #12): stale temporaries of killed writes, file mode, kill-safety."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from helpers.corpus import SMALL_BC, known_state_dict

from densegui.core.weights import files as checkpoint_files
from densegui.core.weights.checkpoint import load_checkpoint, remove_stale_temporaries, save_checkpoint

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes and locks")


def _age(path, seconds=3600):
    old = time.time() - seconds
    os.utime(path, (old, old), follow_symlinks=False)


def _temporaries(folder, name):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp"))


@posix_only
def test_only_our_stale_temporaries_are_removed(tmp_path):
    target = tmp_path / "run[1].pt"  # regex characters in the name are literal
    ours = [".run[1].pt.0f3a9c21.tmp", ".run[1].pt.k_z9x0qq.tmp"]  # this writer's and mkstemp's names
    others = [
        ".run[1].pt.abc.tmp", ".run[1].pt.abcd12345.tmp", ".run[1].pt.ABCD1234.tmp", ".run[1].pt.abcd-234.tmp",
        ".run[1].pt.abcd1234.tmp.bak", ".run[1].pt.abcd1234.temp", "run[1].pt.abcd1234.tmp",
        ".run[1].ptx.abcd1234.tmp", ".run1.pt.abcd1234.tmp", ".other.pt.abcd1234.tmp", "notes.txt",
    ]
    for name in ours + others:
        (tmp_path / name).write_bytes(b"partial")
        _age(tmp_path / name)
    fresh = tmp_path / ".run[1].pt.fresh123.tmp"  # just written, but nobody holds its lock: its writer is gone
    fresh.write_bytes(b"x")
    ours.append(fresh.name)
    folder = tmp_path / ".run[1].pt.folder12.tmp"
    folder.mkdir()
    _age(folder)
    (tmp_path / "real.bin").write_bytes(b"keep me")
    link = tmp_path / ".run[1].pt.symlink1.tmp"
    link.symlink_to(tmp_path / "real.bin")
    _age(link)

    removed = remove_stale_temporaries(target)

    assert sorted(p.name for p in removed) == sorted(ours)
    left = {p.name for p in tmp_path.iterdir()}
    assert not left & set(ours)
    assert set(others) | {folder.name, link.name, "real.bin"} <= left
    assert (tmp_path / "real.bin").read_bytes() == b"keep me"
    assert remove_stale_temporaries(tmp_path / "missing-folder" / "x.pt") == []


@posix_only
def test_a_temporary_locked_by_a_running_writer_stays(tmp_path):
    import fcntl

    tmp = tmp_path / ".x.pt.abcd1234.tmp"
    tmp.write_bytes(b"partial")
    _age(tmp)
    with open(tmp, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert remove_stale_temporaries(tmp_path / "x.pt") == []
    assert [p.name for p in remove_stale_temporaries(tmp_path / "x.pt")] == [tmp.name]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    return proc.pid


@posix_only
def test_a_dead_writers_temporary_goes_however_recent_a_live_ones_never(tmp_path, monkeypatch):
    """The writer's pid and machine are in the temporary's name: a dead writer's file goes at once
    (no age limit); a live one's stays even unlocked (it may be between creating and locking it)
    and also where flock is unavailable, which the pid then decides alone."""
    node = checkpoint_files._node()
    dead = tmp_path / f".x.pt.0badc0de.{_dead_pid()}.{node}.tmp"
    live = tmp_path / f".x.pt.1badc0de.{os.getpid()}.{node}.tmp"
    remote = tmp_path / f".x.pt.2badc0de.{_dead_pid()}.{'0' * 8 if node != '0' * 8 else '1' * 8}.tmp"
    old_style = tmp_path / ".x.pt.3badc0de.tmp"
    for p in (dead, live, remote, old_style):
        p.write_bytes(b"partial")  # all of them fresh
    import fcntl

    with open(remote, "rb") as held:  # another machine's running writer: its lock says so
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        removed = remove_stale_temporaries(tmp_path / "x.pt")
        assert sorted(p.name for p in removed) == sorted([dead.name, old_style.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, remote.name])
    # Without flock the pid decides: the live writer's file stays, a dead one's goes; another
    # machine's cannot be told and stays.
    monkeypatch.setattr(checkpoint_files, "_lock_state", lambda path: None)
    dead.write_bytes(b"partial")
    assert [p.name for p in remove_stale_temporaries(tmp_path / "x.pt")] == [dead.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, remote.name])


def test_save_removes_stale_temporaries_and_leaves_none(tmp_path):
    target = tmp_path / "model.pt"
    stale = tmp_path / ".model.pt.deadbeef.tmp"
    stale.write_bytes(b"partial")
    _age(stale)
    save_checkpoint(target, known_state_dict(SMALL_BC), SMALL_BC)
    assert _temporaries(tmp_path, "model.pt") == []
    assert load_checkpoint(target).config == SMALL_BC


_MODE_SCRIPT = """
import os, stat, sys
import torch
from densegui.core.weights.checkpoint import save_checkpoint
from densegui.core.arch.densenet.config import DenseNetConfig

cfg = DenseNetConfig(growth_rate=2, block_depths=(1,), stem="cifar", in_channels=1, num_classes=2, input_size=4)
from densegui.core.arch.densenet.model import build_model
sd = build_model(cfg).state_dict()
folder = sys.argv[1]
out = []
for umask in (0o022, 0o077, 0o002):
    os.umask(umask)
    path = os.path.join(folder, f"new-{umask:o}.pt")
    save_checkpoint(path, sd, cfg)
    out.append(stat.S_IMODE(os.stat(path).st_mode))
os.umask(0o022)
path = os.path.join(folder, "existing.pt")
save_checkpoint(path, sd, cfg)
os.chmod(path, 0o640)
save_checkpoint(path, sd, cfg)  # a file it replaces keeps its mode
out.append(stat.S_IMODE(os.stat(path).st_mode))
print(" ".join(oct(m) for m in out))
"""


@posix_only
def test_mode_follows_the_umask(tmp_path):
    """Run in a child process: the umask is process-wide."""
    proc = subprocess.run([sys.executable, "-c", _MODE_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0o644", "0o600", "0o664", "0o640"]


_KILLED_WRITER = textwrap.dedent("""
    import io, sys, time
    import torch
    from densegui.core.weights.checkpoint import save_checkpoint
    from densegui.core.arch.densenet.config import DenseNetConfig
    from densegui.core.arch.densenet.model import build_model

    cfg = DenseNetConfig(growth_rate=2, block_depths=(1,), stem="cifar", in_channels=1, num_classes=2, input_size=4)
    real_save = torch.save

    def half_then_hang(obj, fh, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf)
        fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        fh.flush()
        print("half written", flush=True)
        time.sleep(600)

    torch.save = half_then_hang
    save_checkpoint(sys.argv[1], build_model(cfg).state_dict(), cfg)
""")


@posix_only
@pytest.mark.parametrize("previous", [False, True], ids=["new", "replacing"])
def test_a_writer_killed_mid_way_leaves_no_half_written_checkpoint(tmp_path, previous):
    target = tmp_path / "model.pt"
    if previous:
        sd = known_state_dict(SMALL_BC, seed=3)
        save_checkpoint(target, sd, SMALL_BC)
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "half written", proc.stderr.read()
        (tmp,) = _temporaries(tmp_path, "model.pt")
        assert f".{proc.pid}." in tmp  # named after its writer
        assert remove_stale_temporaries(target) == []  # its writer still holds it
    finally:
        proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
    if previous:
        loaded = load_checkpoint(target)
        assert loaded.config == SMALL_BC
        assert all(torch.equal(loaded.state_dict[k], v) for k, v in sd.items())
    else:
        assert not target.exists()
    assert [p.name for p in remove_stale_temporaries(target)] == [tmp]  # at once: no age limit
    assert _temporaries(tmp_path, "model.pt") == []
