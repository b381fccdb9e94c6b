"""Missingness regimes, quote noise and stale-quote injection, vectorised over surfaces.

Masks are boolean ``observed`` arrays (n, 13, 17). The two regimes follow the reference post:

- ``regular``     ~50 % density: a Bernoulli(0.34..0.46) base, a well-quoted ATM band, one to three
                  broker rows and one or two strike columns restored, and (p = 0.55) one wing erased
                  over three to seven maturities.
- ``adversarial`` ~18 % density: a Bernoulli(0.16..0.25) base, a thin ATM spine and one or two
                  near-ATM columns, one wing erased over every maturity, the front (p = 0.65) and
                  the long end (p = 0.45) erased, then six to eleven scattered anchors restored.

- ``liquidity``   real chains' shape: strikes quoted out to a band that widens like sqrt(T)
                  (c sqrt(T), c 0.22-0.45, the put side 1.2-1.8 times further), thinned to 70-95 %
                  inside it, and one to three whole maturities unquoted; the wings, and most of the
                  short end's, are never quoted. Not one of the post's regimes: a check that a
                  repair extrapolates the wings as a real chain needs.

Every mask holds at least 18 quotes (``MIN_MASK_QUOTES``).
"""
from __future__ import annotations

import numpy as np

from core.engine.grid import ATM_INDEX, K_GRID, K_MESH, N_K, N_T, T_GRID, T_MESH, w_to_iv

REGIMES = ("regular", "adversarial")   # the post's; make_masks also knows "liquidity" and "none"
MIN_MASK_QUOTES = 18
NOISE_BP = 18.0
IV_CLIP = (0.03, 2.00)
STALE_FRACTION = 0.08
STALE_SHIFT_BP = (50.0, 110.0)


def _choose(rng: np.random.Generator, counts: np.ndarray, size: int) -> np.ndarray:
    """Per row of ``counts`` (any shape S), pick ``counts`` of ``size`` slots without replacement.

    Returns a boolean array S + (size,): a random permutation rank below the count selects a slot.
    """
    ranks = np.argsort(rng.random(counts.shape + (size,)), axis=-1).argsort(axis=-1)
    return ranks < counts[..., None]


def _span(start: np.ndarray, stop: np.ndarray, size: int) -> np.ndarray:
    """Boolean (n, size): index in [start, stop) per row."""
    index = np.arange(size)
    return (index >= start[:, None]) & (index < stop[:, None])


def _regular(n: int, rng: np.random.Generator) -> np.ndarray:
    p = rng.uniform(0.34, 0.46, size=n)
    m = rng.random((n, N_T, N_K)) < p[:, None, None]
    m[:, :, ATM_INDEX - 1:ATM_INDEX + 2] |= rng.random((n, N_T, 3)) < 0.74
    # Broker rows: one to three maturities with four to seven strikes quoted.
    rows = _choose(rng, rng.integers(1, 4, size=n), N_T)                      # (n, 13)
    cols = _choose(rng, rng.integers(4, 8, size=(n, N_T)), N_K)               # (n, 13, 17)
    m |= rows[:, :, None] & cols
    # Strike columns: one or two strikes quoted on four to eight maturities.
    cols = _choose(rng, rng.integers(1, 3, size=n), N_K)                      # (n, 17)
    rows = _choose(rng, rng.integers(4, 9, size=(n, N_K)), N_T)               # (n, 17, 13)
    m |= cols[:, None, :] & rows.transpose(0, 2, 1)
    # One wing erased over three to seven maturities.
    erase = rng.random(n) < 0.55
    left = rng.random(n) < 0.5
    wing = np.where(left[:, None],
                    _span(np.zeros(n, int), rng.integers(2, 5, size=n), N_K),
                    _span(rng.integers(N_K - 5, N_K - 2, size=n), np.full(n, N_K), N_K))
    rows = _choose(rng, rng.integers(3, 8, size=n), N_T)
    m &= ~(erase[:, None, None] & rows[:, :, None] & wing[:, None, :])
    return m


def _adversarial(n: int, rng: np.random.Generator) -> np.ndarray:
    p = rng.uniform(0.16, 0.25, size=n)
    m = rng.random((n, N_T, N_K)) < p[:, None, None]
    keep = rng.random((n, N_T)) < rng.uniform(0.55, 0.82, size=n)[:, None]
    m[:, :, ATM_INDEX] |= keep
    # One or two of the four near-ATM strikes, quoted on three to six maturities.
    near = np.array([ATM_INDEX - 2, ATM_INDEX - 1, ATM_INDEX + 1, ATM_INDEX + 2])
    chosen = _choose(rng, rng.integers(1, 3, size=n), near.size)              # (n, 4)
    rows = _choose(rng, rng.integers(3, 7, size=(n, near.size)), N_T)         # (n, 4, 13)
    m[:, :, near] |= (chosen[:, :, None] & rows).transpose(0, 2, 1)
    # One wing erased over all maturities.
    left = rng.random(n) < 0.5
    wing = np.where(left[:, None],
                    _span(np.zeros(n, int), rng.integers(4, 7, size=n), N_K),
                    _span(rng.integers(N_K - 7, N_K - 4, size=n), np.full(n, N_K), N_K))
    m &= ~wing[:, None, :]
    front = (rng.random(n) < 0.65)[:, None] & _span(np.zeros(n, int), rng.integers(2, 5, size=n), N_T)
    back = (rng.random(n) < 0.45)[:, None] & _span(rng.integers(N_T - 5, N_T - 2, size=n), np.full(n, N_T), N_T)
    m &= ~(front | back)[:, :, None]
    # Six to eleven scattered anchors (drawn with replacement) restore solvability.
    n_anchor = rng.integers(6, 12, size=n)
    max_anchor = 11
    anchor_T = rng.integers(0, N_T, size=(n, max_anchor))
    anchor_k = rng.integers(0, N_K, size=(n, max_anchor))
    use = np.arange(max_anchor)[None, :] < n_anchor[:, None]
    surface = np.broadcast_to(np.arange(n)[:, None], (n, max_anchor))
    m[surface[use], anchor_T[use], anchor_k[use]] = True
    m[:, :, ATM_INDEX] |= rng.random((n, N_T)) < 0.35
    return m


def _liquidity(n: int, rng: np.random.Generator) -> np.ndarray:
    reach = rng.uniform(0.22, 0.45, size=n)[:, None, None] * np.sqrt(T_GRID)[None, :, None]   # call side
    put_reach = reach * rng.uniform(1.2, 1.8, size=n)[:, None, None]
    k = K_GRID[None, None, :]
    band = np.where(k >= 0, k <= reach, -k <= put_reach)
    m = band & (rng.random((n, N_T, N_K)) < rng.uniform(0.70, 0.95, size=n)[:, None, None])
    m[:, :, ATM_INDEX] |= rng.random((n, N_T)) < 0.9
    m &= ~_choose(rng, rng.integers(1, 4, size=n), N_T)[:, :, None]          # maturities not listed
    return m


def make_masks(regime: str, n: int, seed: int) -> np.ndarray:
    """Boolean observed masks (n, 13, 17) of the named regime, each with >= MIN_MASK_QUOTES quotes."""
    rng = np.random.default_rng(seed)
    if regime == "regular":
        m = _regular(n, rng)
    elif regime == "adversarial":
        m = _adversarial(n, rng)
    elif regime == "liquidity":
        m = _liquidity(n, rng)
    elif regime == "none":
        return np.ones((n, N_T, N_K), dtype=bool)
    else:
        raise ValueError(f"unknown missingness regime {regime!r}; choose one of regular, adversarial, liquidity, none")
    short = m.sum(axis=(1, 2)) < MIN_MASK_QUOTES
    if short.any():
        extra = _choose(rng, np.full(int(short.sum()), MIN_MASK_QUOTES), N_T * N_K).reshape(-1, N_T, N_K)
        m[short] |= extra
    return m


def noise_profile() -> np.ndarray:
    """(13, 17) multiplier of the base quote-noise sd: up to 2.5x in the wings, 1.6x at the front."""
    wing = 1.0 + 1.5 * np.abs(K_MESH) / np.abs(K_GRID).max()
    front = 1.0 + 0.6 * (T_GRID.max() - T_MESH) / (T_GRID.max() - T_GRID.min())
    return wing * front


def noise_sd_iv(noise_bp: float = NOISE_BP) -> np.ndarray:
    """(13, 17) standard deviation of the quote noise in vol units."""
    return noise_bp / 1e4 * noise_profile()


def add_quote_noise(w: np.ndarray, seed: int, noise_bp: float = NOISE_BP) -> np.ndarray:
    """Noisy quotes in implied vol for every cell of clean total variance ``w`` (n, 13, 17)."""
    rng = np.random.default_rng(seed)
    iv = w_to_iv(w)
    noise = rng.normal(0.0, 1.0, size=iv.shape) * noise_sd_iv(noise_bp)
    return np.clip(iv + noise, *IV_CLIP)


def observe(w: np.ndarray, observed: np.ndarray, seed: int, noise_bp: float = NOISE_BP) -> np.ndarray:
    """Noisy quoted implied vols (n, 13, 17) with NaN where ``observed`` is False."""
    return np.where(observed, add_quote_noise(w, seed, noise_bp), np.nan)


def inject_stale(iv_obs: np.ndarray, seed: int, fraction: float = STALE_FRACTION,
                 shift_bp: tuple = STALE_SHIFT_BP) -> tuple:
    """Shift a random ``fraction`` of each surface's quotes by +-50..110 bp (stale quotes).

    iv_obs: (n, 13, 17) with NaN where missing. Returns (iv_stale, is_stale) where is_stale is a
    boolean (n, 13, 17) label; at least one quote per surface is made stale.
    """
    rng = np.random.default_rng(seed)
    observed = np.isfinite(iv_obs)
    n_obs = observed.sum(axis=(1, 2))
    n_stale = np.maximum(1, (n_obs * fraction).astype(int))
    # Rank observed cells in a random order; missing cells rank last.
    keys = np.where(observed, rng.random(iv_obs.shape), 2.0).reshape(len(iv_obs), -1)
    ranks = keys.argsort(axis=1).argsort(axis=1).reshape(iv_obs.shape)
    is_stale = observed & (ranks < n_stale[:, None, None])
    sign = rng.choice([-1.0, 1.0], size=iv_obs.shape)
    shift = rng.uniform(shift_bp[0], shift_bp[1], size=iv_obs.shape) / 1e4
    iv_stale = np.where(is_stale, np.maximum(iv_obs + sign * shift, IV_CLIP[0]), iv_obs)
    return iv_stale, is_stale
