"""Weights: safe reading and writing of checkpoint files, state-dict arithmetic, architecture inference
from a state dict alone, candidates and loading, and the published pretrained files."""
