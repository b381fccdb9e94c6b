"""Malformed weights files and manifests (issue 13 item 4), built from the shipped files.

``CASES`` maps a case name to (method, mutate); ``mutate(state, manifest)`` edits copies of the
shipped state dict and manifest in place (or returns replacements). ``write_case`` writes one into
a directory and returns the .pt path.
"""
from __future__ import annotations

import copy
import json
import math
import pickle
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "weights"


def _set(section, key, value):
    def mutate(state, manifest):
        target = manifest if section is None else manifest.setdefault(section, {})
        target[key] = value
    return mutate


def _tensor(key, make):
    def mutate(state, manifest):
        state[key] = make(state[key])
    return mutate


def _replace_state(value):
    def mutate(state, manifest):
        return value, manifest
    return mutate


def _replace_manifest(value):
    def mutate(state, manifest):
        return state, value
    return mutate


CASES = {
    "best conformal without keys": ("best", _set(None, "conformal", {"foo": 1})),
    "best conformal NaN multiplier": ("best", lambda s, m: m["conformal"]["quantiles"]["0"].update({"0.8": math.nan})),
    "best state is a tensor": ("best", _replace_state(torch.zeros(3))),
    "best tau2 wrong size": ("best", _tensor("tau2", lambda t: t[:-1])),
    "best mu wrong size": ("best", _tensor("mu", lambda t: t[:, :100])),
    "best mu NaN": ("best", _tensor("mu", lambda t: torch.full_like(t, math.nan))),
    "best V inf": ("best", _tensor("V", lambda t: t.index_fill(0, torch.tensor([0]), math.inf))),
    "best integer weights": ("best", _tensor("weights", lambda t: torch.ones_like(t, dtype=torch.int64))),
    "best zero mixture weight": ("best", _tensor("weights", lambda t: torch.cat([torch.zeros(1), t[1:] / t[1:].sum()]))),
    "best rank 600": ("best", _tensor("V", lambda t: torch.zeros(t.shape[0], t.shape[1], 600) + 1e-3)),
    "best config rank string": ("best", _set("config", "rank", "32")),
    "best noise_bp negative": ("best", _set("config", "noise_bp", -5)),
    "best config not a dict": ("best", _set(None, "config", [1, 2])),
    "best manifest is a list": ("best", _replace_manifest([1, 2, 3])),
    "best unknown config field": ("best", _set("config", "bogus", 1)),
    "cnn depth string": ("cnn", _set("model", "depth", "4")),
    "cnn width 1e7": ("cnn", _set("model", "width", 10_000_000)),
    "cnn width float": ("cnn", _set("model", "width", 32.5)),
    "cnn in_channels 5": ("cnn", _set("model", "in_channels", 5)),
    "cnn NaN tensor": ("cnn", _tensor("mean_head.bias", lambda t: torch.full_like(t, math.nan))),
    "cnn wrong shape": ("cnn", _tensor("mean_head.weight", lambda t: torch.zeros(2, *t.shape[1:]))),
    "cnn integer tensor": ("cnn", _tensor("mean_head.bias", lambda t: t.to(torch.int32))),
    "cnn model not a dict": ("cnn", _set(None, "model", "big")),
    "vae sd_scale NaN": ("vae", _set(None, "sd_scale", math.nan)),
    "vae sd_scale negative": ("vae", _set(None, "sd_scale", -1.0)),
    "vae sd_scale string": ("vae", _set(None, "sd_scale", "1")),
    "vae hidden huge": ("vae", _set("model", "hidden", 10**9)),
    "vae inf tensor": ("vae", _tensor("mean_head.bias", lambda t: torch.full_like(t, math.inf))),
}
RAW = {   # files that are not state dicts at all: (method, bytes of the .pt file)
    "pickle payload": ("best", pickle.dumps({"x": print})),
    "empty file": ("cnn", b""),
    "text file": ("vae", b"hello, I am not a tensor file\n"),
}


def _shipped(method: str) -> tuple:
    state = torch.load(WEIGHTS / f"{method}.pt", weights_only=True)
    manifest = json.loads((WEIGHTS / f"{method}.json").read_text())
    return state, manifest


def write_case(name: str, directory: Path) -> tuple:
    """(method, path of the .pt) of case ``name`` (CASES or RAW) written into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name.replace(' ', '_')}.pt"
    if name in RAW:
        method, data = RAW[name]
        path.write_bytes(data)
        path.with_suffix(".json").write_text((WEIGHTS / f"{method}.json").read_text())
        return method, path
    method, mutate = CASES[name]
    state, manifest = (copy.deepcopy(x) for x in _shipped(method))
    out = mutate(state, manifest)
    if isinstance(out, tuple):
        state, manifest = out
    torch.save(state, path)
    path.with_suffix(".json").write_text(json.dumps(manifest, allow_nan=True))
    return method, path
