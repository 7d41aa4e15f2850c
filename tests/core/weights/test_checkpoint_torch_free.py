"""What the GUI process unpickles from a checkpoint load (LoadedCheckpoint, BlockReuse, CheckpointError)
and the reuse choices it shows must not pull torch in."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys

import pytest
from helpers.corpus import SMALL_BC, known_state_dict

from densegui.core.weights.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from densegui.core.analysis.reuse_measures import reuse_matrices

TORCH_FREE = ["densegui.core.weights.checkpoint", "densegui.core.weights.statedict", "densegui.core.analysis.reuse", "densegui.core.weights.infer",
              "densegui.core.analysis.reuse_measures", "densegui.core.analysis.reuse_run", "densegui.core.weights.pretrained",
              "densegui.core.weights.files", "densegui.core.weights.reading", "densegui.core.weights.scan"]


def _run(code: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True, timeout=120, check=False)


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_imports_without_torch(module):
    proc = _run(f"import sys, {module}\nassert 'torch' not in sys.modules, 'torch was imported'")
    assert proc.returncode == 0, proc.stderr.decode()


def test_the_trainers_checkpoint_files_need_no_inference():
    """What the trainer reads and writes its checkpoints with comes from the file layer alone."""
    code = """
import sys
from densegui.core.weights.files import FORMAT, CheckpointError, read_torch_file, remove_stale_temporaries, save_checkpoint
loaded = [m for m in ('torch', 'densegui.core.weights.infer', 'densegui.core.weights.scan',
                      'densegui.core.weights.statedict', 'densegui.core.weights.checkpoint') if m in sys.modules]
assert not loaded, loaded
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr.decode()


def test_a_load_result_unpickles_and_is_usable_without_torch(tmp_path):
    path = save_checkpoint(tmp_path / "small.pt", known_state_dict(SMALL_BC), SMALL_BC,
                           {"dataset": {"name": "digits"}, "heldout_accuracy": 0.5, "epochs": 3})
    loaded = load_checkpoint(path)
    blocks = reuse_matrices(loaded.state_dict, loaded.config)
    # As the background process sends it: without the weights.
    payload = pickle.dumps((dataclasses.replace(loaded, state_dict={}), blocks, CheckpointError("bad file.")))
    code = """
import pickle, sys
loaded, blocks, error = pickle.loads(sys.stdin.buffer.read())
from densegui.core.analysis.reuse import (DEFAULT_CHECKPOINT, NORMALISATION_LABELS, NORMALISATIONS, column_rank,
                                 default_checkpoint_path, normalise)
assert set(NORMALISATION_LABELS) == set(NORMALISATIONS) and default_checkpoint_path().name == DEFAULT_CHECKPOINT
print(loaded.describe())
for mode in NORMALISATIONS:
    normalise(blocks[0].matrix, mode)
column_rank(blocks[0].matrix, 0, 1)
print(type(error).__name__, error)
assert 'torch' not in sys.modules, 'torch was imported'
"""
    proc = _run(code, payload)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert lines == [loaded.describe(), "CheckpointError bad file."]
    assert lines[0].startswith("small.pt (densegui) — configuration stored in the file: k=4, blocks 3-4-2, ")
    assert lines[0].endswith("Trained on digits, held-out accuracy 50.00%, 3 epochs.")


def test_candidates_and_notes_unpickle_without_torch(tmp_path):
    """A file with a model, its EMA copy and timm's deep stem: what the window shows of it needs no torch."""
    import torch
    from helpers.corpus import timm_train_checkpoint, to_timm_deep_stem

    sd = to_timm_deep_stem(known_state_dict(SMALL_BC))
    torch.save(timm_train_checkpoint(sd, sd), tmp_path / "model_best.pth.tar")
    loaded = load_checkpoint(tmp_path / "model_best.pth.tar")
    assert loaded.candidates == ("state_dict", "state_dict_ema") and len(loaded.notes) == 1
    payload = pickle.dumps(dataclasses.replace(loaded, state_dict={}))
    code = """
import pickle, sys
loaded = pickle.loads(sys.stdin.buffer.read())
print(loaded.describe())
assert 'torch' not in sys.modules, 'torch was imported'
"""
    proc = _run(code, payload)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == loaded.describe()
    assert "shown 'state_dict'" in loaded.describe() and "Stem not recognised" in loaded.describe()


def test_a_measure_result_unpickles_without_torch(tmp_path):
    """The window unpickles the ReuseAnalysis of every measure (noise floors, extra matrices, the
    pruning curve) and shows it without torch."""
    from densegui.core.analysis.reuse_run import analyse

    path = save_checkpoint(tmp_path / "small.pt", known_state_dict(SMALL_BC), SMALL_BC, {})
    analysis = analyse(load_checkpoint(path), ["bn-weights"], noise_seeds=2)
    payload = pickle.dumps(analysis)
    code = """
import json, pickle, sys
analysis = pickle.loads(sys.stdin.buffer.read())
print(json.dumps(analysis.to_dict("bn-weights")["blocks"][0]["noise_floor"]["seeds"]))
assert 'torch' not in sys.modules, 'torch was imported'
"""
    proc = _run(code, payload)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "[0, 1]"
