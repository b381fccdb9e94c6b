"""The mask-conditional VAE (core.repairers.vae): shapes, a tiny training run, repair output, weight errors."""
import json

import numpy as np
import pytest
import torch

import core
import core.settings
from core.repairers.registry import REPAIRERS, get_repairer
from core.repairers.vae import (
    N_CELLS,
    PosteriorNet,
    SurfaceVAE,
    VAEConfig,
    VAERepairer,
    load_vae,
    make_inputs,
    predict,
)
from core.repairers.weights import WeightsError, save_weights
from core.training.vae import VAETrainConfig, build_manifest, make_batch, train

TINY = VAEConfig(z_dim=4, hidden=16, depth=1, n_samples=3)


def _quotes(n=5, family="sabr_event", regime="adversarial", seed=11):
    iv_true, iv_obs, observed = make_batch(family, regime, n, seed)
    return iv_true, np.where(observed, iv_obs, np.nan), observed


def test_architecture_shapes():
    model, post = SurfaceVAE(TINY), PosteriorNet(TINY)
    _, iv_obs, observed = _quotes()
    x, level = make_inputs(np.nan_to_num(iv_obs, nan=1.0), observed)
    assert x.shape == (5, 2 * N_CELLS + 1) and level.shape == (5,)
    np.testing.assert_allclose(level, np.nanmean(iv_obs, axis=(1, 2)), rtol=1e-12)
    h, mu, logvar = model.condition(x)
    assert h.shape == (5, 16) and mu.shape == logvar.shape == (5, 4)
    u, s = model.decode(mu, h)
    assert u.shape == s.shape == (5, N_CELLS)
    mu_q, logvar_q = post(torch.zeros(5, N_CELLS), h)
    assert mu_q.shape == logvar_q.shape == (5, 4)
    # the posterior network is training-only: nothing of it is in the shipped state dict
    assert not any(k.startswith("body") or k.startswith("head") for k in model.state_dict())


def test_inputs_ignore_unquoted_cells():
    _, iv_obs, observed = _quotes(n=2)
    x1, _ = make_inputs(np.nan_to_num(iv_obs, nan=1.0), observed)
    x2, _ = make_inputs(np.nan_to_num(iv_obs, nan=0.3), observed)
    assert torch.equal(x1, x2)


def test_predict_is_positive_and_sd_deterministic():
    torch.manual_seed(0)
    model = SurfaceVAE(TINY)
    _, iv_obs, observed = _quotes(n=4)
    iv, sd = predict(model, np.nan_to_num(iv_obs, nan=1.0), observed)
    assert iv.shape == sd.shape == (4, 13, 17)
    assert np.isfinite(iv).all() and (iv > 0).all() and (sd > 0).all()
    # the same surface alone gives the same mean and sd as inside a batch
    iv1, sd1 = predict(model, np.nan_to_num(iv_obs, nan=1.0)[2:3], observed[2:3])
    np.testing.assert_allclose(iv1[0], iv[2], rtol=1e-5)
    np.testing.assert_allclose(sd1[0], sd[2], rtol=1e-4)


def test_tiny_training_run_writes_loadable_manifest_and_weights(tmp_path):
    cfg = VAETrainConfig(epochs=2, surfaces_per_epoch=192, batch_size=64, n_val_per_cell=8, threads=1,
                         model=TINY)
    model, history = train(cfg, progress=False)
    assert len(history["val_rmse_iv"]) == 2 and np.isfinite(history["val_rmse_iv"]).all()
    assert history["best_val_rmse_iv"] == min(history["val_rmse_iv"])
    assert history["sd_scale"] > 0
    manifest = build_manifest(cfg, history)
    for key in ("model", "train_config", "data", "history", "best_val_rmse_iv", "sd_scale", "train_seconds",
                "torch_version", "date"):
        assert key in manifest
    # training seeds are disjoint from the benchmark's test seeds (1001-4004) and from validation
    assert manifest["data"]["train"]["surface_seeds"][0] >= 200000
    assert manifest["data"]["train"]["noise_seeds"][1] < manifest["data"]["validation"]["surface_seeds"][0]
    path = tmp_path / "tiny.pt"
    save_weights(model, path, manifest)
    assert json.loads(path.with_suffix(".json").read_text())["data"]["train"]["surfaces_per_epoch"] == 192
    loaded, sd_scale = load_vae(path)
    assert loaded.config == TINY and sd_scale == pytest.approx(history["sd_scale"], rel=1e-4)
    _, iv_obs, observed = _quotes(n=3)
    pred = VAERepairer(path).predict(np.where(observed, core.iv_to_w(np.nan_to_num(iv_obs, nan=1.0)), 0.0),
                                     observed)
    w_raw, sd = pred.w, pred.sd
    assert np.isfinite(w_raw).all() and (w_raw > 0).all() and np.isfinite(sd).all() and (sd > 0).all()


def test_missing_and_corrupt_weights_give_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="weights file not found"):
        load_vae(tmp_path / "absent.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="corrupt or not a PyTorch state dict"):
        load_vae(bad)
    wrong = tmp_path / "wrong.pt"
    save_weights(torch.nn.Linear(2, 2), wrong, {"model": {}})
    with pytest.raises(WeightsError, match="does not fit the VAE"):
        load_vae(wrong)
    no_manifest = tmp_path / "lonely.pt"
    torch.save(SurfaceVAE(TINY).state_dict(), no_manifest)
    with pytest.raises(WeightsError, match="manifest not found"):
        load_vae(no_manifest)
    _, iv_obs, _ = _quotes(n=2)
    with pytest.raises(WeightsError, match="weights file not found"):
        core.repair(iv_obs, "vae", weights=tmp_path / "absent.pt")


def test_registered_and_shipped_weights_repair():
    assert "vae" in core.METHODS and REPAIRERS["vae"] is VAERepairer
    assert get_repairer("vae").has_sd
    iv_true, iv_obs, observed = _quotes(n=20, family="shifted_ssvi", regime="regular", seed=12)
    res = core.repair(iv_obs, "vae")
    assert res.iv.shape == iv_obs.shape and np.isfinite(res.iv).all() and (res.iv > 0).all()
    assert (np.diff(res.iv**2 * core.T_GRID[:, None], axis=-2) >= -1e-12).all()
    assert np.isfinite(res.sd).all() and (res.sd > 0).all()
    err = np.sqrt(np.mean((res.iv - iv_true)[~observed] ** 2))
    assert err < 0.03   # the shipped model repairs, it does not just return something positive
    manifest = json.loads((core.settings.WEIGHTS_DIR / "vae.json").read_text())
    assert manifest["best_val_rmse_iv"] < 0.03
    assert len(manifest["history"]["val_rmse_iv"]) == manifest["data"]["train"]["epochs_run"]
