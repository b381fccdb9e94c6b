"""The registry of repair methods: name -> repairer class."""
from __future__ import annotations

import importlib

from core.repairers.base import Repairer


class _LazyRegistry(dict):
    """name -> repairer class, each class imported on first use: the learned methods import torch
    (seconds), which `--help`, the classical methods and the chain baselines should not pay for.
    Values may be given as "module:Class" strings or as classes (tests register their own)."""

    def __getitem__(self, name):
        value = dict.__getitem__(self, name)
        if isinstance(value, str):
            module, attr = value.split(":")
            value = getattr(importlib.import_module(module), attr)
            dict.__setitem__(self, name, value)
        return value

    def get(self, name, default=None):
        return self[name] if name in self else default

    def values(self):
        return [self[name] for name in self]

    def items(self):
        return [(name, self[name]) for name in self]


REPAIRERS = _LazyRegistry({
    "interp": "core.repairers.classical:InterpRepairer",
    "svi": "core.repairers.classical:SVIRepairer",
    "interp_svi": "core.repairers.classical:InterpSVIRepairer",
    "cnn": "core.repairers.cnn:CNNRepairer",
    "vae": "core.repairers.vae:VAERepairer",
    "best": "core.repairers.best:BestRepairer",
})
METHODS = tuple(REPAIRERS)
# The method we recommend: the lowest missing-point RMSE in every cell of the synthetic benchmark.
DEFAULT_METHOD = "best"


def repairer_class(method) -> type:
    """The class registered under ``method``; ValueError naming the choices otherwise."""
    if not isinstance(method, str) or method not in REPAIRERS:
        raise ValueError(f"unknown method {method!r:.60}; choose one of {', '.join(METHODS)}")
    return REPAIRERS[method]


def get_repairer(method: str, **config) -> Repairer:
    """A configured repairer by name; ValueError naming an unknown method or a bad option."""
    cls = repairer_class(method)
    cls.check_options(config)
    return cls(**config)
