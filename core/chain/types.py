"""The chain interface: ChainQuotes in, a ChainSurface out (see notes/CHAIN_API in the brief).

``ChainQuotes`` is one option chain after import, one entry per usable quote, in model units.
``ChainSurface`` is what every chain method returns: a repaired surface on the chain's own domain.
``from_quoteset`` converts today's importer output (``core.quotes.read.QuoteSet``) to ChainQuotes,
keeping the quotes the grid workflow sets aside as "outside": the chain path has no grid box.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

_T_DECIMALS = 9          # expiries equal to 1e-9 years (0.03 s) are one expiry


@dataclass(frozen=True)
class ChainQuotes:
    """One option chain after import: one entry per usable quote (OTM, two-sided), model units.

    T years (> 0), k = ln(K / F_T), iv mid implied vol, iv_bid / iv_ask (NaN where unknown),
    forward and discount of the row's expiry (NaN forward where the file gave k only), weight =
    number of raw quotes merged into the entry (>= 1). All arrays 1-D of the same length.
    """

    T: np.ndarray
    k: np.ndarray
    iv: np.ndarray
    iv_bid: np.ndarray
    iv_ask: np.ndarray
    forward: np.ndarray
    discount: np.ndarray
    weight: np.ndarray

    def __post_init__(self):
        n = None
        for f in fields(self):
            a = np.asarray(getattr(self, f.name), dtype=np.float64).ravel()
            object.__setattr__(self, f.name, a)
            if n is None:
                n = a.size
            elif a.size != n:
                raise ValueError(f"ChainQuotes: {f.name} has {a.size} entries, T has {n}")
        for name in ("T", "k", "iv"):
            a = getattr(self, name)
            if not np.isfinite(a).all():
                raise ValueError(f"ChainQuotes: {name} has {int((~np.isfinite(a)).sum())} non-finite value(s)")
        if (self.T <= 0).any():
            raise ValueError("ChainQuotes: T must be > 0 years")
        if (self.iv <= 0).any():
            raise ValueError("ChainQuotes: iv must be > 0")

    def __len__(self) -> int:
        return self.T.size

    @property
    def expiries(self) -> np.ndarray:
        """Sorted distinct expiries T (years)."""
        return np.unique(np.round(self.T, _T_DECIMALS))

    def slice(self, i: int) -> np.ndarray:
        """Boolean mask of the quotes of expiry ``i`` (index into ``expiries``)."""
        return np.round(self.T, _T_DECIMALS) == self.expiries[i]

    def subset(self, mask) -> "ChainQuotes":
        """The quotes where ``mask`` (boolean or index array) selects."""
        return ChainQuotes(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    @property
    def w(self) -> np.ndarray:
        """Total variance iv^2 T of every quote."""
        return self.iv**2 * self.T

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({f.name: getattr(self, f.name) for f in fields(self)})


@runtime_checkable
class ChainSurface(Protocol):
    """A repaired surface on the chain's own domain. Every chain method returns one.

    expiries (m,) fitted T, sorted; k_bounds (m, 2) lowest / highest quoted k per expiry.
    w, iv, sd, call, extrapolated broadcast over T (years) and k (ln K/F); call is the
    forward-normalised undiscounted call price C / (D F) = Black(k, w); sd is the predictive sd in
    vol units, or None for a method without one; extrapolated is True before the first / after the
    last expiry or outside the (interpolated in T) quoted k range; params() has one row per expiry.
    """

    expiries: np.ndarray
    k_bounds: np.ndarray

    def w(self, T, k) -> np.ndarray: ...
    def iv(self, T, k) -> np.ndarray: ...
    def sd(self, T, k) -> np.ndarray | None: ...
    def call(self, T, k) -> np.ndarray: ...
    def extrapolated(self, T, k) -> np.ndarray: ...
    def params(self) -> pd.DataFrame: ...


def _column(table: pd.DataFrame, name: str, default: float) -> np.ndarray:
    if name in table.columns:
        return pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=np.float64)
    return np.full(len(table), default)


def from_frame(table: pd.DataFrame) -> ChainQuotes:
    """ChainQuotes from a normalised quote frame (columns T, k, iv and optionally iv_bid, iv_ask,
    forward, discount, n_merged or weight). Every row is used: filter before calling."""
    for name in ("T", "k", "iv"):
        if name not in table.columns:
            raise ValueError(f"quote frame has no {name} column")
    weight = _column(table, "n_merged" if "n_merged" in table.columns else "weight", 1.0)
    return ChainQuotes(T=_column(table, "T", np.nan), k=_column(table, "k", np.nan), iv=_column(table, "iv", np.nan),
                       iv_bid=_column(table, "iv_bid", np.nan), iv_ask=_column(table, "iv_ask", np.nan),
                       forward=_column(table, "forward", np.nan), discount=_column(table, "discount", 1.0),
                       weight=np.where(np.isfinite(weight) & (weight >= 1), weight, 1.0))


CHAIN_STATUSES = ("used", "outside")   # importer rows a chain repair uses (outside: beyond the 13 x 17 grid only)


def from_quoteset(quotes, include_outside: bool = True) -> ChainQuotes:
    """ChainQuotes from a ``core.quotes.read.QuoteSet``: the rows with status ``used`` and, unless
    ``include_outside`` is False, ``outside`` (valid quotes beyond the 13 x 17 grid's reach)."""
    keep = CHAIN_STATUSES if include_outside else ("used",)
    table = quotes.table[quotes.table["status"].isin(keep)]
    if len(table) == 0:
        raise ValueError(f"{quotes.report.source}: no usable quotes")
    return from_frame(table)
