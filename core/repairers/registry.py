"""The registry of repair methods: name -> repairer class."""
from __future__ import annotations

from core.repairers.base import Repairer
from core.repairers.best import BestRepairer
from core.repairers.classical import InterpRepairer, InterpSVIRepairer, SVIRepairer
from core.repairers.cnn import CNNRepairer
from core.repairers.vae import VAERepairer

REPAIRERS = {cls.name: cls for cls in (InterpRepairer, SVIRepairer, InterpSVIRepairer, CNNRepairer, VAERepairer,
                                      BestRepairer)}
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
