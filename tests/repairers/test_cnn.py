import json

import numpy as np
import pytest
import torch

from core.repairers.cnn import (
    LOGVAR_CLAMP,
    CNNConfig,
    RepairCNN,
    load_cnn,
    make_inputs,
)
from core.repairers.weights import WeightsError, load_state, save_weights
from core.training.cnn import (
    LossConfig,
    TrainConfig,
    build_manifest,
    calendar_penalty,
    repair_loss,
    train,
)


def test_architecture_is_the_posts():
    model = RepairCNN()
    convs = [m for m in model.backbone if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32] * 4 and all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.SiLU) for m in model.backbone) == 4
    assert float(model.logvar_head.bias.detach()) == -3.0
    x = make_inputs(np.random.rand(5, 13, 17) * 0.05, np.random.rand(5, 13, 17) < 0.5)
    assert x.shape == (5, 4, 13, 17)
    mean, log_var = model(x)
    assert mean.shape == log_var.shape == (5, 1, 13, 17)
    assert (mean > 0).all()
    with torch.no_grad():
        model.logvar_head.bias.fill_(50.0)
    assert float(model(x)[1].max().detach()) == LOGVAR_CLAMP[1]


def test_inputs_zero_missing_cells():
    w = np.full((1, 13, 17), 0.04)
    observed = np.zeros((1, 13, 17), bool)
    observed[0, 3, 4] = True
    x = make_inputs(w, observed).numpy()
    assert x[0, 0, 3, 4] == pytest.approx(0.5) and x[0, 0].sum() == pytest.approx(0.5)
    assert x[0, 1].sum() == 1.0
    assert x[0, 2].min() == -1 and x[0, 2].max() == 1 and x[0, 3].min() == -1


def test_loss_terms():
    target = torch.full((2, 1, 13, 17), 0.5)
    mask = torch.zeros_like(target)
    log_var = torch.zeros_like(target)
    cfg = LossConfig(nll_weight=0, calendar_weight=0, smoothness_weight=0)
    # missing cells weigh 5x
    assert float(repair_loss(target + 0.1, log_var, target, mask, cfg, False)) == pytest.approx(5 * 0.01)
    assert float(repair_loss(target + 0.1, log_var, target, mask + 1, cfg, False)) == pytest.approx(0.01)
    decreasing = torch.linspace(1, 0, 13).view(1, 1, 13, 1).expand(2, 1, 13, 17)
    assert float(calendar_penalty(decreasing)) > 0
    assert float(calendar_penalty(decreasing.flip(2))) == 0


def test_tiny_training_run_and_manifest(tmp_path):
    cfg = TrainConfig(n_train=64, n_val=16, epochs=3, nll_warmup_epochs=1, batch_size=32, threads=1,
                      model=CNNConfig(width=8))
    model, history = train(cfg, progress=False)
    assert len(history["val_rmse_iv"]) == 3 and np.isfinite(history["val_rmse_iv"]).all()
    assert history["best_val_rmse_iv"] == min(history["val_rmse_iv"])
    manifest = build_manifest(cfg, history)
    for key in ("model", "train_config", "data", "history", "best_val_rmse_iv", "torch_version", "date"):
        assert key in manifest
    path = tmp_path / "tiny.pt"
    save_weights(model, path, manifest)
    assert json.loads(path.with_suffix(".json").read_text())["data"]["train"]["n"] == 64
    loaded = load_cnn(path)
    assert loaded.config.width == 8


def test_missing_and_corrupt_weights_give_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="weights file not found"):
        load_state(tmp_path / "absent.pt", "cnn")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="corrupt or not a PyTorch state dict"):
        load_state(bad, "cnn")
    wrong = tmp_path / "wrong.pt"
    torch.save({"something": torch.zeros(3)}, wrong)
    with pytest.raises(WeightsError, match="does not fit the CNN"):
        load_cnn(wrong)


def test_shipped_weights_load_with_manifest():
    model = load_cnn()
    manifest = json.loads((__import__("core.settings").settings.WEIGHTS_DIR / "cnn.json").read_text())
    assert manifest["best_val_rmse_iv"] < 0.02
    assert len(manifest["history"]["val_rmse_iv"]) == manifest["train_config"]["epochs"]
    assert isinstance(model, RepairCNN)
