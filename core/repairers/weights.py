"""Weights files: a PyTorch state dict (tensors only) with a JSON manifest beside it (<stem>.json).

Loading never unpickles arbitrary objects (``weights_only=True``); every failure is a
``WeightsError`` with a one-line reason.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable or does not fit the model."""


def save_weights(model: nn.Module, path: Path, manifest: dict) -> None:
    """Write the state dict to ``path`` and the manifest beside it as ``<stem>.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")


def load_manifest(path: Path) -> dict:
    """The JSON manifest beside a weights file; WeightsError if missing or unreadable."""
    manifest_path = Path(path).with_suffix(".json")
    try:
        return json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"weights manifest not found: {manifest_path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"weights manifest {manifest_path} is unreadable: {exc}") from None


def train_command(method: str) -> str:
    """The command that makes the weights of ``method``."""
    return f"python -m core.cli train {method}"


def load_state(path: Path, method: str) -> dict:
    """Load the state dict of ``method``'s weights safely (tensors only); WeightsError with a
    one-line reason otherwise (a missing file names the command that makes it)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path} (make it with `{train_command(method)}`)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"weights file {path} is corrupt or not a PyTorch state dict: {reason}") from None
