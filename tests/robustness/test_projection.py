"""Issue 13 items 6-7: the full projection accepts flat high-variance slices (it fails its own check no
more), and the calendar guarantee is exact in implied vol after the w -> iv -> w round trip."""
import numpy as np
import pytest

import core
from core.engine import arbitrage
from core.engine.arbitrage import calendar_exact_iv, calendar_project, project
from core.engine.grid import T_MESH, w_to_iv


@pytest.mark.parametrize("w", [1.0, 64.0, 209.0, 210.0, 220.0, 364.0, 1250.0, 5600.0, 1e6])
def test_flat_slices_pass_and_full_projection_leaves_a_flat_surface_alone(w):
    flat = np.full((17, 1), w)
    assert arbitrage._slices_pass(flat).all()
    W = np.full((13, 17), w) * np.linspace(1.0, 1.5, 13)[:, None]   # flat smiles, rising in T
    np.testing.assert_array_equal(project(W, "full"), W)


def test_full_projection_output_passes_its_own_check_on_high_variance_surfaces():
    rng = np.random.default_rng(0)
    for _ in range(40):
        level = np.exp(rng.uniform(np.log(50.0), np.log(2e4)))
        W = level * (1 + np.cumsum(rng.uniform(0, 0.2, (13, 17)), axis=0))
        out = project(W, "full")
        assert arbitrage._surfaces_pass(out[None])[0]


def test_calendar_exact_in_iv_after_the_round_trip():
    rng = np.random.default_rng(1)
    W = np.repeat(rng.uniform(1.0, 6000.0, (300, 1, 17)), 13, axis=1)
    W = calendar_project(W * (1 + 1e-15 * rng.random(W.shape)))
    assert (np.diff(w_to_iv(W) ** 2 * T_MESH, axis=-2) < 0).any()      # what plain w_to_iv loses
    iv = calendar_exact_iv(W)
    assert (np.diff(iv**2 * T_MESH, axis=-2) >= 0).all()
    np.testing.assert_allclose(iv, w_to_iv(W), rtol=1e-14)


@pytest.mark.parametrize("method", core.METHODS)
def test_repair_output_is_exactly_calendar_free_in_iv(method):
    iv = np.full((13, 17), np.nan)
    iv[:, ::4] = np.linspace(4.99, 0.5, 13)[:, None]     # falling vols: the calendar projection binds
    out = core.repair(iv, method, arbitrage="calendar")
    assert (np.diff(out.iv**2 * T_MESH, axis=-2) >= 0).all()
