"""The real-chain benchmark: protocols, scores, JSON, the command; the shared chains load."""
import json
from pathlib import Path

import numpy as np
import pytest

from core.chain.workflow import read_chain
from core.evaluation.real import (RANDOM_FRACTION, SAMPLED, RealConfig, build_parser, expiry_masks, main, masks,
                                  random_masks, run, wing_mask)

SHARED_REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "real"


def test_protocol_masks(small_chain):
    n = len(small_chain)
    draws = random_masks(small_chain, 3, seed=5)
    assert all(m.sum() == round(RANDOM_FRACTION * n) for m in draws)
    assert not np.array_equal(draws[0], draws[1])
    np.testing.assert_array_equal(draws[0], random_masks(small_chain, 1, seed=5)[0])
    wing = wing_mask(small_chain)
    for i in range(small_chain.expiries.size):
        sel = small_chain.slice(i)
        hidden, kept = np.abs(small_chain.k[sel & wing]), np.abs(small_chain.k[sel & ~wing])
        assert kept.size >= 3
        if hidden.size:
            assert hidden.min() >= kept.max()          # the outer ones by |k|
    exp = expiry_masks(small_chain, None)
    assert len(exp) == small_chain.expiries.size - 2
    assert not any(m[small_chain.slice(0)].any() or m[small_chain.slice(small_chain.expiries.size - 1)].any() for m in exp)
    assert len(expiry_masks(small_chain, 2)) == 2
    # by default every interior expiry is hidden in turn (the command's 0 means all as well)
    assert RealConfig().max_expiries is None and build_parser().parse_args(["--real", "x"]).max_expiries is None


def test_sampled_methods_get_the_subsample(small_chain):
    cfg = RealConfig(draws=5, sampled=("cnn",), sampled_draws=2, sampled_max_expiries=1)
    interior = small_chain.expiries.size - 2
    assert interior > 1
    assert [len(masks(small_chain, "random", cfg, m)) for m in ("cnn", "svi_gp")] == [2, 5]
    assert [len(masks(small_chain, "expiry", cfg, m)) for m in ("cnn", "svi_gp")] == [1, interior]
    # the subsample is the first draws of the full run: the same seeds, so its cells are comparable
    np.testing.assert_array_equal(masks(small_chain, "random", cfg, "cnn")[1], masks(small_chain, "random", cfg, "svi_gp")[1])
    # the default: the outside AH baseline and the two learned grid models, never the recommended method
    args = build_parser().parse_args(["--real", "x"])
    assert tuple(args.sampled.split(",")) == SAMPLED and "svi_gp" not in SAMPLED and args.workers >= 1
    # none sampled: every method on every draw
    assert len(masks(small_chain, "random", RealConfig(draws=5, sampled=()), "ah")) == 5


def test_run_on_one_small_chain(tmp_path, small_frame):
    small_frame[["T", "k", "iv", "bid", "ask"]].to_csv(tmp_path / "synthetic.csv", index=False)
    cfg = RealConfig(draws=2, max_expiries=2, methods=("svi_fit", "interp"), workers=1)
    result = run(tmp_path, cfg)
    cell = result["chains"]["synthetic"]["protocols"]
    assert set(cell) == {"random", "wing", "expiry"}
    for protocol, row in cell.items():
        for method in cfg.methods:
            s = row[method]
            assert s["errors"] == [] and s["n_fits"] == (2 if protocol != "wing" else 1)
            assert 0 < s["rmse"]["mean"] < 0.1          # a sanity bound, not a score
            assert 0 <= s["inside_bid_ask"]["mean"] <= 1
            assert s["dense_violations"] == 0
            assert s["seconds_per_fit"] > 0


def test_command_writes_json_and_refuses_a_bad_folder(tmp_path, small_frame, capsys):
    data = tmp_path / "chains"
    data.mkdir()
    small_frame[["T", "k", "iv"]].to_csv(data / "c.csv", index=False)
    out = tmp_path / "r.json"
    assert main(["--real", str(data), "--draws", "2", "--max-expiries", "1", "--methods", "svi_fit",
                 "--workers", "1", "--json", str(out)]) == 0
    assert "Held-out RMSE" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["chains"]["c"]["protocols"]["random"]["svi_fit"]["inside_bid_ask"]["mean"] is None  # no bid/ask
    assert main(["--real", str(tmp_path / "missing"), "--json", str(out)]) == 2
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED_REAL.is_dir(), reason="../shared/real (the real chains) is not beside the repo")
def test_every_shared_chain_loads_with_bid_ask_where_it_has_prices():
    files = sorted(SHARED_REAL.glob("*.csv"))
    assert files
    for f in files:
        chain = read_chain(f)
        assert len(chain) > 50 and chain.expiries.size >= 5, f.name
        has_prices = "bid" in f.read_text().splitlines()[0]
        assert np.isfinite(chain.iv_bid).any() == has_prices, f.name


def test_subsets_and_interval_coverage(tmp_path, small_frame, capsys):
    data = tmp_path / "chains"
    data.mkdir()
    small_frame[["T", "k", "iv", "bid", "ask"]].to_csv(data / "a.csv", index=False)
    small_frame[["T", "k", "iv"]].to_csv(data / "b.csv", index=False)
    out = tmp_path / "r.json"
    assert main(["--real", str(data), "--chains", "a", "--protocols", "random", "--draws", "2",
                 "--methods", "svi_gp,svi_fit", "--workers", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result["chains"]) == ["a"] and list(result["chains"]["a"]["protocols"]) == ["random"]
    row = result["chains"]["a"]["protocols"]["random"]
    assert 0.5 <= row["svi_gp"]["cov95"] <= 1.0 and row["svi_gp"]["cov80"] <= row["svi_gp"]["cov95"]
    assert row["svi_fit"]["cov80"] is None                  # no sd, no interval
    assert "cov 80 / 95 %" in capsys.readouterr().out
    assert main(["--real", str(data), "--chains", "nope", "--json", str(out)]) == 2
    with pytest.raises(SystemExit):
        main(["--real", str(data), "--protocols", "sideways", "--json", str(out)])
    with pytest.raises(SystemExit):
        main(["--real", str(data), "--sampled", "nope", "--json", str(out)])
