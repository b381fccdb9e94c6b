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


def get_repairer(method: str, **config) -> Repairer:
    """A repairer by name; ValueError naming the choices for an unknown one."""
    if method not in REPAIRERS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return REPAIRERS[method](**config)
