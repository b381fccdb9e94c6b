"""The post's mask-conditional CNN, its inputs and its loading.

The network sees four channels on the 13 x 17 grid: observed total variance / W_SCALE (zero where
missing), the observed mask, and the maturity and log-moneyness coordinates scaled to [-1, 1].
It returns the mean of w / W_SCALE (softplus, so positive) and a log-variance in the same
normalised units, clamped to [-8, 1.5].
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from core.engine.grid import K_MESH, T_MESH, w_to_iv
from core.repairers.base import Prediction, Repairer, check_weights
from core.repairers.weights import WeightsError, load_manifest, load_state, manifest_float, manifest_int
from core.settings import WEIGHTS_DIR

W_SCALE = 0.08
LOGVAR_CLAMP = (-8.0, 1.5)
MAX_WIDTH, MAX_DEPTH = 512, 32   # far above the post's 32 x 4; bounds what a manifest can make us allocate
T_COORD = (2.0 * (T_MESH - T_MESH.min()) / (T_MESH.max() - T_MESH.min()) - 1.0).astype(np.float32)
K_COORD = (2.0 * (K_MESH - K_MESH.min()) / (K_MESH.max() - K_MESH.min()) - 1.0).astype(np.float32)


@dataclass
class CNNConfig:
    in_channels: int = 4
    width: int = 32
    depth: int = 4
    logvar_bias: float = -3.0


class RepairCNN(nn.Module):
    def __init__(self, config: CNNConfig = CNNConfig()):
        super().__init__()
        self.config = config
        layers, channels = [], config.in_channels
        for _ in range(config.depth):
            layers += [nn.Conv2d(channels, config.width, 3, padding=1), nn.SiLU()]
            channels = config.width
        self.backbone = nn.Sequential(*layers)
        self.mean_head = nn.Conv2d(config.width, 1, 1)
        self.logvar_head = nn.Conv2d(config.width, 1, 1)
        with torch.no_grad():
            # Start the variance head small so the early NLL does not swamp the mean.
            self.logvar_head.bias.fill_(config.logvar_bias)

    def forward(self, x: torch.Tensor) -> tuple:
        z = self.backbone(x)
        mean_norm = F.softplus(self.mean_head(z)) + 1e-5
        log_var = torch.clamp(self.logvar_head(z), *LOGVAR_CLAMP)
        return mean_norm, log_var


def make_inputs(w_obs: np.ndarray, observed: np.ndarray) -> torch.Tensor:
    """(n, 13, 17) observed w (any value where missing) and mask -> (n, 4, 13, 17) float32 tensor."""
    n = w_obs.shape[0]
    w_in = np.where(observed, w_obs, 0.0) / W_SCALE
    coords = np.broadcast_to(np.stack([T_COORD, K_COORD]), (n, 2) + T_COORD.shape)
    x = np.concatenate([w_in[:, None], observed[:, None].astype(np.float64), coords], axis=1)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def predict(model: RepairCNN, w_obs: np.ndarray, observed: np.ndarray, batch_size: int = 4096) -> tuple:
    """Run the network. Returns (w_mean, sd_w), both (n, 13, 17) float64 in total-variance units."""
    model.eval()
    means, sds = [], []
    with torch.no_grad():
        for start in range(0, w_obs.shape[0], batch_size):
            x = make_inputs(w_obs[start:start + batch_size], observed[start:start + batch_size])
            mean_norm, log_var = model(x)
            means.append(mean_norm[:, 0].double().numpy() * W_SCALE)
            sds.append(torch.exp(0.5 * log_var[:, 0]).double().numpy() * W_SCALE)
    return np.concatenate(means), np.concatenate(sds)


def sd_w_to_iv(sd_w: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Delta method: sd of iv = sd of w / (2 iv T), with iv floored at 1e-3 as in the post."""
    iv = w_to_iv(w)
    return sd_w / (2.0 * np.maximum(iv, 1e-3) * T_MESH)


def cnn_config(manifest: dict, where: str) -> CNNConfig:
    """The CNNConfig a manifest's "model" section describes; WeightsError naming a bad field."""
    model = manifest.get("model", {})
    where = f"{where}: model"
    return CNNConfig(in_channels=manifest_int(model, "in_channels", 4, 4, 4, where),
                     width=manifest_int(model, "width", CNNConfig.width, 1, MAX_WIDTH, where),
                     depth=manifest_int(model, "depth", CNNConfig.depth, 1, MAX_DEPTH, where),
                     logvar_bias=manifest_float(model, "logvar_bias", CNNConfig.logvar_bias, -50.0, 50.0, where))


def load_cnn(path: Path = WEIGHTS_DIR / "cnn.pt") -> RepairCNN:
    """The post's CNN with weights from ``path`` (config read from its manifest when there is one)."""
    state = load_state(path, "cnn")
    try:
        manifest = load_manifest(path)
    except WeightsError:
        manifest = {}   # a bare state dict of the default architecture still loads
    model = RepairCNN(cnn_config(manifest, f"weights manifest of {path}"))
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise WeightsError(f"weights file {path} does not fit the CNN: {reason}") from None
    model.eval()
    return model


@lru_cache(maxsize=4)
def _cached_cnn(path: str):
    return load_cnn(Path(path))


class CNNRepairer(Repairer):
    """The post's mask-conditional CNN; sd from its log-variance head by the delta method."""

    name = "cnn"
    options = ("weights",)
    has_sd = True
    needs_weights = True

    def __init__(self, weights: str | Path = WEIGHTS_DIR / "cnn.pt"):
        self.weights = check_weights(weights)

    def load(self) -> None:
        self.model  # noqa: B018 - the cached load raises WeightsError for a bad file

    @property
    def model(self):
        return _cached_cnn(str(self.weights.resolve()))

    def predict(self, w_obs, observed):
        w_mean, sd_w = predict(self.model, w_obs, observed)
        return Prediction(w_mean, sd_w_to_iv(sd_w, w_mean))
