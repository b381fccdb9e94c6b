"""The gridding rule: exact on the grid, exact for linear surfaces, local, and its leave-one-out."""
import numpy as np
import pytest

from core.engine.grid import DK, DT, K_GRID, T_GRID
from core.engine.grid_read import K_CATCHMENT, T_CATCHMENT, inside_grid, iv_at, values_at
from core.quotes.gridding import grid_quotes, leave_one_out
from core.synth.families import generate

T_MESH, K_MESH = np.meshgrid(T_GRID, K_GRID, indexing="ij")


def test_on_grid_quotes_map_to_their_nodes_exactly():
    w = generate("shifted_ssvi", 1, 5)[0]
    iv = np.sqrt(w / T_GRID[:, None])
    mask = np.random.default_rng(0).random((13, 17)) < 0.4
    g = grid_quotes(T_MESH[mask], K_MESH[mask], iv[mask])
    assert (g.observed == mask).all()
    np.testing.assert_allclose(g.iv_obs[mask], iv[mask], rtol=1e-12)
    assert (g.n_quotes[mask] == 1).all()


def test_linear_total_variance_is_reproduced_off_grid():
    rng = np.random.default_rng(1)
    T = np.repeat(np.linspace(0.1, 1.95, 25), 60) + 0.0
    k = np.tile(np.linspace(-0.44, 0.44, 60), 25) + rng.uniform(-0.004, 0.004, T.size)
    w = 0.02 + 0.01 * k + 0.03 * T
    g = grid_quotes(T, k, np.sqrt(w / T))
    local = g.how == "local"
    assert local.sum() > 150
    w_node = g.iv_obs**2 * T_GRID[:, None]
    np.testing.assert_allclose(w_node[local], (0.02 + 0.01 * K_MESH + 0.03 * T_MESH)[local], atol=1e-12)
    # the sparse map is the same linear map
    np.testing.assert_allclose((g.weights @ w).reshape(13, 17)[g.observed], w_node[g.observed], rtol=1e-12)


def test_a_node_needs_a_quote_within_half_a_step():
    T = np.array([T_GRID[3]] * 4 + [T_GRID[6]] * 4)
    k = np.array([K_GRID[2] + 0.6 * DK, K_GRID[8], K_GRID[9] + 0.4 * DK, K_GRID[12]] * 2)
    g = grid_quotes(T, k, np.full(8, 0.2))
    row = g.observed[3]
    assert not row[2] and row[3]            # 0.6 and 0.4 steps from the quote at K2 + 0.6 step
    assert row[8] and row[9] and not row[10] and row[12]
    assert row.sum() == 4
    assert not g.observed[4:6].any() and not g.observed[1].any()   # T gap of 3 steps stays missing


def test_flat_vol_in_T_from_a_single_nearby_expiry():
    T = np.concatenate([np.full(17, T_GRID[5] + 0.3 * DT), np.full(17, T_GRID[10])])
    k = np.concatenate([K_GRID, K_GRID])
    iv = np.concatenate([np.full(17, 0.25), np.full(17, 0.2)])
    g = grid_quotes(T, k, iv)
    assert (g.how[5] == "flat").all()
    np.testing.assert_allclose(g.iv_obs[5], 0.25)


def test_catchment_edges_and_outside():
    assert T_CATCHMENT == pytest.approx((0.08, 2.08)) and K_CATCHMENT == pytest.approx((-0.478125, 0.478125))
    assert inside_grid(2.07, 0.0) and not inside_grid(2.09, 0.0) and not inside_grid(0.07, 0.0)
    assert inside_grid(1.0, 0.47) and not inside_grid(1.0, 0.49)
    g = grid_quotes(np.array([2.06, 2.06, 1.84, 1.84]), np.array([0.0, 0.47, 0.0, 0.47]), np.full(4, 0.2))
    assert g.observed[12, 8] and g.observed[12, 16]


def test_values_at_reads_nodes_and_is_nan_outside():
    w = generate("ssvi", 1, 3)[0]
    np.testing.assert_allclose(values_at(w, T_MESH, K_MESH), w, rtol=1e-12)
    np.testing.assert_allclose(iv_at(w, T_MESH, K_MESH), np.sqrt(w / T_MESH), rtol=1e-12)
    assert np.isnan(values_at(w, 2.5, 0.0)) and np.isnan(values_at(w, 1.0, 0.6))
    assert np.isfinite(values_at(w, 2.5, 0.0, clamp=True))
    # PCHIP keeps a calendar-free grid calendar-free between the nodes
    T = np.linspace(0.08, 2.0, 400)
    for kk in (-0.4, -0.1, 0.0, 0.2, 0.43):
        assert (np.diff(values_at(w, T, np.full_like(T, kk))) >= -1e-12).all()


def test_leave_one_out_equals_regridding_without_the_quote():
    rng = np.random.default_rng(7)
    T = np.repeat(rng.uniform(0.08, 2.0, 6), 12)
    k = rng.uniform(-0.45, 0.45, T.size)
    iv = rng.uniform(0.1, 0.4, T.size)
    g = grid_quotes(T, k, iv)
    for part, stack in leave_one_out(g, chunk=16):
        for q, iv_loo in zip(part, stack):
            keep = np.arange(T.size) != q
            ref = grid_quotes(T[keep], k[keep], iv[keep]).iv_obs
            assert (np.isfinite(ref) == np.isfinite(iv_loo)).all()
            np.testing.assert_allclose(iv_loo[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-10)


def test_influence_and_main_node():
    g = grid_quotes(np.array([T_GRID[2], T_GRID[2], T_GRID[6], T_GRID[6]]),
                    np.array([K_GRID[3], K_GRID[5], K_GRID[3], K_GRID[5]]), np.full(4, 0.2))
    assert [list(s) for s in g.influence()] == [[2 * 17 + 3], [2 * 17 + 5], [6 * 17 + 3], [6 * 17 + 5]]
    assert list(g.main_node()) == [2 * 17 + 3, 2 * 17 + 5, 6 * 17 + 3, 6 * 17 + 5]
