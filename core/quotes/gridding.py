"""Quotes onto the 13 x 17 model grid, and a repaired grid back to each quote's (T, k).

Onto the grid (``grid_quotes``)
-------------------------------
A node takes a value only from quotes close to it; filling holes is the repair method's job.
All arithmetic is on total variance w = iv^2 T.

1. Within an expiry (in k). Node k_j is quoted when a quote lies within half a grid step
   (0.028) of it: the nearest-node rule. Its value is a local-linear regression of w on k with a
   triangular kernel. When quotes lie within one step on both sides, the kernel's half-width is
   2.5 x the farther of the two nearest distances (at least half a step, at most 1.5 steps): two
   bracketing quotes give linear interpolation, a dense strip of strikes is averaged (less
   noise), and an on-grid quote with no neighbour within half a step is taken exactly. At the
   end of a slice the fit is one-sided, reaching the nearest quote at another strike (at most
   1.5 steps); a lone quote is taken as is.
2. Across expiries (in T). The same rule over the expiries' step-1 values at each k node, with
   the T step (0.16 years). A node with a single expiry within reach takes that expiry's
   implied vol (flat in T: w scaled by T_node / T_expiry).
3. Quotes up to half a step beyond the grid's box (T up to 2.08 years, |k| up to 0.478) count,
   so edge nodes are not lost; not below T = 0.08, where the front smile changes too fast in T
   to lend to the first node. Farther quotes are the caller's to report.

Every node value is a linear combination of quote variances; ``Gridded.weights`` holds it, so
each quote's influence (which nodes it moves, by how much) is known exactly, and
``leave_one_out`` gives the grid each quote would give without it (one slice redone per quote),
which the stale-quote score repairs.

Back to the quotes: core.engine.grid_read (``values_at``, ``iv_at``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from core.engine.grid import DK, DT, K_GRID, N_K, N_T, T_GRID, w_to_iv

_EPS = 1e-12


@dataclass(frozen=True)
class GridRule:
    """The gridding rule's knobs, in grid steps."""

    reach: float = 0.5             # a node is observed when a quote lies within this many steps ...
    fill_bracketed: bool = False   # ... or (if True) when quotes bracket it within `bracket` steps
    bracket: float = 1.0           # two-sided when quotes lie within this many steps on both sides
    bandwidth_factor: float = 2.5  # kernel half-width = factor * farther bracketing distance ...
    min_bandwidth: float = 0.5     # ... at least this many steps
    max_bandwidth: float = 1.5     # ... at most this many steps (one-sided fits)


@dataclass
class Gridded:
    """Quotes on the grid.

    iv_obs: (13, 17) implied vol, NaN where no quote reaches the node (the input of core.repair).
    weights: sparse (221, n_quotes); node w (flattened T-major) = weights @ quote w.
    n_quotes: (13, 17) number of quotes with non-zero weight at each node.
    how: (13, 17) "" (missing), "local" (local-linear in T across expiries) or "flat" (the vol of the
         one expiry within reach, flat in T).
    """

    iv_obs: np.ndarray
    weights: sparse.csr_matrix
    n_quotes: np.ndarray
    how: np.ndarray
    _state: dict = field(default=None, repr=False)     # what leave_one_out needs

    @property
    def observed(self) -> np.ndarray:
        return np.isfinite(self.iv_obs)

    def influence(self) -> list:
        """Per quote, the flat indices of the nodes it moves (empty for a quote that reaches none)."""
        csc = self.weights.tocsc()
        return [csc.indices[csc.indptr[q]:csc.indptr[q + 1]] for q in range(csc.shape[1])]

    def main_node(self) -> np.ndarray:
        """Per quote, the flat index of the node it weighs most on (-1 where none)."""
        csc = abs(self.weights).tocsc()
        out = np.full(csc.shape[1], -1)
        for q in range(csc.shape[1]):
            lo, hi = csc.indptr[q], csc.indptr[q + 1]
            if hi > lo:
                out[q] = csc.indices[lo + int(np.argmax(csc.data[lo:hi]))]
        return out


def local_linear_weights(x: np.ndarray, nodes: np.ndarray, step: float, rule: GridRule = GridRule()) -> tuple:
    """Weights (n_nodes, n_points) of the gridding rule along one axis, and a (n_nodes,) mask of
    nodes whose value is a plain average of points at one position (no slope could be fitted).

    x: (n_points,) positions, NaN = unavailable; nodes: (n_nodes,) targets; step: grid step.
    A node gets a value (a non-zero row) when a point lies within ``rule.reach`` steps.
    """
    d = x[None, :] - nodes[:, None]                                      # (nodes, points)
    avail = np.isfinite(d)
    inf = np.inf
    dist = np.where(avail, np.abs(d), inf)
    nearest = dist.argmin(axis=1) if x.size else np.zeros(nodes.size, int)
    d_near = dist.min(axis=1, initial=inf)
    observed = d_near <= rule.reach * step + _EPS
    d_left = np.where(avail & (d <= _EPS), -d, inf).min(axis=1, initial=inf)
    d_right = np.where(avail & (d >= -_EPS), d, inf).min(axis=1, initial=inf)
    far = np.maximum(d_left, d_right)
    two_sided = far <= rule.bracket * step + _EPS
    if rule.fill_bracketed:
        observed |= two_sided
    # One-sided: the window reaches the nearest point at a different position, for a slope.
    if x.size:
        x_near = np.where(avail, x[None, :], np.nan)[np.arange(nodes.size), nearest]
        other = avail & (np.abs(x[None, :] - x_near[:, None]) > _EPS)
        d_second = np.where(other, dist, inf).min(axis=1, initial=inf)
    else:
        d_second = np.full(nodes.size, inf)
    reach = np.where(two_sided, far, d_second)
    h = np.clip(rule.bandwidth_factor * np.where(np.isfinite(reach), reach, 0.0),
                rule.min_bandwidth * step, rule.max_bandwidth * step)[:, None]
    dd = np.where(avail, d, 0.0)
    kern = np.where(avail, np.maximum(0.0, 1.0 - np.abs(dd) / h), 0.0)
    s0 = kern.sum(1, keepdims=True)
    s1 = (kern * dd).sum(1, keepdims=True)
    s2 = (kern * dd * dd).sum(1, keepdims=True)
    det = s0 * s2 - s1 * s1
    degenerate = det <= 1e-9 * np.maximum(s0 * s2, _EPS)
    with np.errstate(invalid="ignore", divide="ignore"):
        lin = kern * (s2 - s1 * dd) / np.where(degenerate, 1.0, det)
        const = kern / np.where(s0 > 0, s0, 1.0)
    weights = np.where(degenerate, const, lin)
    return np.where(observed[:, None], weights, 0.0), degenerate[:, 0] & observed


def _mix_column(values_j: np.ndarray, expiries: np.ndarray, rule: GridRule) -> tuple:
    """Step 2 for one k node: (13, E) weights of the T nodes over the expiries' values, and how."""
    x = np.where(np.isfinite(values_j), expiries, np.nan)
    lw, flat = local_linear_weights(x, T_GRID, DT, rule)                 # (13, E)
    has = np.abs(lw).sum(1) > 0
    # A single expiry in the window lends its implied vol: w scales with T.
    scale = np.where(flat[:, None], T_GRID[:, None] / expiries[None, :], 1.0)
    mix = np.where(has[:, None], lw * scale, 0.0)
    how = np.where(has, np.where(flat, "flat", "local"), "").astype(object)
    return mix, how


def _node_values(mix: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(13, 17) node w from (13, 17, E) mixing weights and (E, 17) expiry values (NaN-safe)."""
    return np.einsum("tje,ej->tj", mix, np.nan_to_num(values.astype(np.float64)))


def grid_quotes(T: np.ndarray, k: np.ndarray, iv: np.ndarray, rule: GridRule = GridRule()) -> Gridded:
    """Place quotes (T years, k log-moneyness, iv decimal vol; 1-D, same length, finite) on the grid."""
    T = np.asarray(T, dtype=np.float64).ravel()
    k = np.asarray(k, dtype=np.float64).ravel()
    iv = np.asarray(iv, dtype=np.float64).ravel()
    if not (T.size == k.size == iv.size):
        raise ValueError(f"T, k and iv must have the same length; got {T.size}, {k.size}, {iv.size}")
    n = T.size
    w = iv * iv * T
    expiries, which = np.unique(np.round(T, 9), return_inverse=True)
    E = expiries.size
    # Step 1: per expiry, node weights over its quotes.
    slice_weights = []                                                   # (17, n_e), quote indices
    values = np.full((E, N_K), np.nan)
    for e in range(E):
        idx = np.flatnonzero(which == e)
        lw, _ = local_linear_weights(k[idx], K_GRID, DK, rule)
        has = np.abs(lw).sum(1) > 0
        values[e, has] = lw[has] @ w[idx]
        slice_weights.append((lw, idx))
    # Step 2: per k node, across expiries.
    mix = np.zeros((N_T, N_K, E))                                        # node <- expiry value
    how = np.full((N_T, N_K), "", dtype=object)
    for j in range(N_K):
        mix[:, j], how[:, j] = _mix_column(values[:, j], expiries, rule)
    # Compose the two linear maps into node <- quote weights.
    r_idx, c_idx, data = [], [], []
    for e in range(E):
        lw, idx = slice_weights[e]
        for j in np.flatnonzero(np.abs(lw).sum(1) > 0):
            m = mix[:, j, e]
            nodes = np.flatnonzero(m != 0)
            if nodes.size == 0:
                continue
            q = np.flatnonzero(lw[j] != 0)
            r_idx.append(np.repeat(nodes * N_K + j, q.size))
            c_idx.append(np.tile(idx[q], nodes.size))
            data.append(np.outer(m[nodes], lw[j, q]).ravel())
    if data:
        weights = sparse.csr_matrix((np.concatenate(data), (np.concatenate(r_idx), np.concatenate(c_idx))),
                                    shape=(N_T * N_K, n))
    else:
        weights = sparse.csr_matrix((N_T * N_K, n))
    has_value = (how != "")
    w_node = np.asarray(weights @ w).reshape(N_T, N_K)
    n_quotes = np.diff(weights.indptr).reshape(N_T, N_K)
    # A local-linear value can undershoot to <= 0 only on absurd inputs; such a node is left missing.
    bad = has_value & ~(w_node > 0)
    has_value &= ~bad
    how[bad] = ""
    with np.errstate(invalid="ignore"):
        iv_obs = np.where(has_value, w_to_iv(w_node, T_GRID[:, None]), np.nan)
    if bad.any():
        keep = sparse.diags((~bad).ravel().astype(float))
        weights = (keep @ weights).tocsr()
        weights.eliminate_zeros()
        n_quotes = np.diff(weights.indptr).reshape(N_T, N_K)
    state = {"T": T, "k": k, "w": w, "expiries": expiries, "which": which, "values": values, "mix": mix,
             "rule": rule}
    return Gridded(iv_obs=iv_obs, weights=weights, n_quotes=n_quotes, how=how, _state=state)


def leave_one_out(gridded: Gridded, quotes=None, chunk: int = 256):
    """Yield (quote indices, iv_obs stack (m, 13, 17)): the grid each quote would give without it.

    Exact for the gridding rule: the quote's expiry slice is redone without it; a k column whose
    availability changes has its T weights redone. Cost per quote is one slice, not one grid.
    """
    st = gridded._state
    T, k, w, expiries, which = st["T"], st["k"], st["w"], st["expiries"], st["which"]
    values, mix, rule = st["values"], st["mix"], st["rule"]
    base = _node_values(mix, values)
    base_has = np.abs(mix).sum(-1) > 0
    quotes = np.arange(T.size) if quotes is None else np.asarray(quotes)
    members = {e: np.flatnonzero(which == e) for e in np.unique(which[quotes])}
    for start in range(0, quotes.size, chunk):
        part = quotes[start:start + chunk]
        out = np.empty((part.size, N_T, N_K))
        for i, q in enumerate(part):
            e = which[q]
            idx = members[e][members[e] != q]
            new_e = np.full(N_K, np.nan)
            if idx.size:
                lw, _ = local_linear_weights(k[idx], K_GRID, DK, rule)
                has = np.abs(lw).sum(1) > 0
                new_e[has] = lw[has] @ w[idx]
            node_w = base + mix[:, :, e] * (np.nan_to_num(new_e) - np.nan_to_num(values[e]))[None, :]
            node_has = base_has.copy()
            changed = np.flatnonzero(np.isfinite(new_e) != np.isfinite(values[e]))
            if changed.size:
                vals = values.copy()
                vals[e] = new_e
                for j in changed:
                    m_j, _ = _mix_column(vals[:, j], expiries, rule)
                    node_w[:, j] = m_j @ np.nan_to_num(vals[:, j])
                    node_has[:, j] = np.abs(m_j).sum(1) > 0
            node_has &= node_w > 0
            with np.errstate(invalid="ignore"):
                out[i] = np.where(node_has, w_to_iv(node_w, T_GRID[:, None]), np.nan)
        yield part, out
