"""Percent or decimal vols when the median is between 1 and 5: the strikes decide (core.quotes.units)."""
import numpy as np
import pytest

from core.chain.workflow import repair_chain
from core.quotes.units import vol_scale
from core.synth.chains import ChainSpec, make_chain
from core.synth.mixtures import merton_w

COLUMNS = ["valuation_date", "expiry", "strike", "forward", "iv", "bid", "ask"]


def _chain(vol: float, jump_sd: float, seed: int):
    q = dict(vol_short=vol, vol_long=vol, kappa=1.0, lam=0.5, jump_mean=0.0, jump_sd=jump_sd)
    spec = ChainSpec(noise_bp=5.0, atm_vol=vol, weeklies=1, monthlies=4, horizon_years=1.0)
    return make_chain(lambda T, k: merton_w(q, T, k), spec, seed=seed)


def test_a_chain_at_120_percent_vol_is_read_as_decimal():
    """A meme or biotech name quotes 100-500 % vols: read as percent they were 1.2 % and the repair
    sat on its 2 % floor. Its strikes reach a few standard moves; as percent vols they would be
    hundreds of moves out, so the data say decimal, and the note says why."""
    df = _chain(1.2, 0.3, 1)
    out = repair_chain(df[COLUMNS], method="svi_fit")
    note = [line for line in out.summary_lines() if "decimal" in line]
    assert note and "median is 1." in note[0] and "standard moves" in note[0]
    err = out.quote_table["iv_repaired"].to_numpy() - df["iv_true"].to_numpy()
    assert np.sqrt(np.mean(err**2)) < 0.01


@pytest.mark.parametrize("vol", [1.2, 0.03])
def test_percent_files_stay_percent(vol):
    """The same high-vol chain written in percent (median 120), and a 3 % chain in percent (median
    3, where decimal would put every strike within a hundredth of a move): both read as percent."""
    df = _chain(vol, 0.3 if vol > 1 else 0.01, 2)
    pct = df[COLUMNS].copy()
    pct[["iv", "bid", "ask"]] *= 100
    out = repair_chain(pct, method="svi_fit")
    assert any("read as percent" in line for line in out.summary_lines())
    used = out.quote_table["status"] == "used"
    np.testing.assert_allclose(out.quote_table.loc[used, "iv"], df.loc[used.to_numpy(), "iv"], rtol=1e-9)


def test_rule_at_its_edges():
    v = np.full(50, 2.0)
    assert vol_scale(v, "iv")[0] == 0.01                           # no strikes: the old rule, percent
    T = np.full(50, 0.25)
    wide = np.linspace(-1.0, 0.6, 50)                              # reaches 1 move of a 200 % vol
    assert vol_scale(v, "iv", wide, T)[0] == 1.0
    narrow = np.linspace(-0.03, 0.02, 50)                          # 3 moves of a 2 % vol
    assert vol_scale(v, "iv", narrow, T)[0] == 0.01
    assert vol_scale(np.full(50, 7.0), "iv", wide, T)[0] == 0.01   # a median of 7 is percent whatever the strikes
    assert vol_scale(np.full(50, 0.4), "iv", wide, T) == (1.0, None)
