"""Weights files: a PyTorch state dict (tensors only) with a JSON manifest beside it (<stem>.json).

Loading never unpickles arbitrary objects (``weights_only=True``); every failure is a
``WeightsError`` with a one-line reason. A file is checked before anything is built from it: its
size, that it holds a dict of finite floating-point tensors, and (``manifest_int`` and friends,
``check_tensor``) each model's manifest fields and tensor shapes, so a bad file is refused at load
time and never shown as loaded only to fail, or allocate without bound, at inference.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import torch
import torch.nn as nn


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable or does not fit the model."""


MAX_WEIGHTS_BYTES = 32 * 2**20    # the largest shipped file (the VAE) is under 2 MiB
MAX_MANIFEST_BYTES = 2**20


def save_weights(model: nn.Module, path: Path, manifest: dict) -> None:
    """Write the state dict to ``path`` and the manifest beside it as ``<stem>.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")


def load_manifest(path: Path) -> dict:
    """The JSON manifest beside a weights file (a JSON object); WeightsError if missing or unreadable."""
    manifest_path = Path(path).with_suffix(".json")
    try:
        if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
            raise WeightsError(f"weights manifest {manifest_path} is larger than {MAX_MANIFEST_BYTES // 2**20} MiB")
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"weights manifest not found: {manifest_path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"weights manifest {manifest_path} is unreadable: {exc}") from None
    if not isinstance(manifest, dict):
        raise WeightsError(f"weights manifest {manifest_path} is not a JSON object")
    return manifest


def _field(section: dict, key: str, default, where: str):
    if not isinstance(section, dict):
        raise WeightsError(f"{where} must be a JSON object, got {type(section).__name__}")
    return section.get(key, default)


def manifest_int(section: dict, key: str, default: int, low: int, high: int, where: str) -> int:
    """``section[key]`` (``default`` when absent) as an int in [low, high]; WeightsError otherwise."""
    value = _field(section, key, default, where)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WeightsError(f"{where}: {key} must be an integer in [{low}, {high}], got {value!r}")
    return value


def manifest_float(section: dict, key: str, default: float, low: float, high: float, where: str,
                   low_inclusive: bool = False) -> float:
    """``section[key]`` (``default`` when absent) as a finite float in (low, high] ([low, high] with
    ``low_inclusive``); WeightsError otherwise."""
    value = _field(section, key, default, where)
    above = (lambda v: low <= v) if low_inclusive else (lambda v: low < v)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not (above(value) and value <= high):
        bracket = "[" if low_inclusive else "("
        raise WeightsError(f"{where}: {key} must be a finite number in {bracket}{low:g}, {high:g}], got {value!r}")
    return float(value)


def manifest_bool(section: dict, key: str, default: bool, where: str) -> bool:
    """``section[key]`` (``default`` when absent) as true or false; WeightsError otherwise."""
    value = _field(section, key, default, where)
    if not isinstance(value, bool):
        raise WeightsError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def check_tensor(state: dict, key: str, shape: tuple, where: str, positive: bool = False) -> torch.Tensor:
    """``state[key]`` with exactly ``shape`` (None matches any size), and > 0 if ``positive``."""
    if key not in state:
        raise WeightsError(f"{where}: tensor {key!r} is missing")
    tensor = state[key]
    if tensor.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, tensor.shape)):
        want = "x".join("*" if s is None else str(s) for s in shape)
        raise WeightsError(f"{where}: tensor {key!r} has shape {tuple(tensor.shape)}, expected {want}")
    if positive and not bool((tensor > 0).all()):
        raise WeightsError(f"{where}: tensor {key!r} must be positive everywhere")
    return tensor


def train_command(method: str) -> str:
    """The command that makes the weights of ``method``."""
    return f"python -m core.cli train {method}"


def load_state(path: Path, method: str) -> dict:
    """Load the state dict of ``method``'s weights safely (tensors only); WeightsError with a
    one-line reason otherwise (a missing file names the command that makes it). The file must be
    at most MAX_WEIGHTS_BYTES and hold a dict of finite floating-point tensors."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path} (make it with `{train_command(method)}`)")
    if path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise WeightsError(f"weights file {path} is larger than {MAX_WEIGHTS_BYTES // 2**20} MiB; "
                           f"not a {method} weights file")
    try:
        with warnings.catch_warnings():   # torch's own warnings (pickle protocol) would break the one line
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        text = str(exc).strip()
        if "weights_only" in text:   # torch's advice (weights_only=False) would run the file's code: never
            reason = "it holds objects other than tensors, which are refused (loading them could run code)"
        else:
            reason = text.splitlines()[0] if text else type(exc).__name__
        raise WeightsError(f"weights file {path} is corrupt or not a PyTorch state dict: {reason}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise WeightsError(f"weights file {path} is not a state dict (a dict of named tensors)")
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            raise WeightsError(f"weights file {path}: tensor {key!r} is {str(tensor.dtype).replace('torch.', '')}, "
                               "not floating point")
        if not bool(torch.isfinite(tensor).all()):
            raise WeightsError(f"weights file {path}: tensor {key!r} holds NaN or inf")
    return state
