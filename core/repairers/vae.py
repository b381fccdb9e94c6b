"""A mask-conditional VAE for surface repair (the post's "generative baseline"); the model and its use.

The published learned repairs of vol surfaces are variational autoencoders (Bergeron et al. 2022,
Ning et al. 2021): a decoder maps a low-dimensional latent z to a whole surface. This is the
conditional form (a CVAE, Sohn et al. 2015), so that at test time z comes from the quotes alone:

- a conditioning network reads the quotes and their mask and gives features h and the prior
  p(z | quotes) = N(mu_p, sigma_p^2);
- a posterior network (training only, not shipped) reads the clean surface and h and gives
  q(z | surface, quotes) = N(mu_q, sigma_q^2);
- the decoder maps (z, h) to a mean surface and a per-cell decoder sd, both in implied vol.

Units. Every surface is scaled by its own level, the mean quoted implied vol: the network sees
log(iv_obs / level) where quoted (0 elsewhere), the mask, and log(level); its mean output is
u with iv = level * exp(u), so the repair is positive by construction; the decoder sd is relative,
sd_iv = level * exp(s / 2). Losses are in implied-vol units.

Loss per surface (``VAETrainConfig``), summed over the 221 cells and divided by 221:
  (1 - gsnn_weight) * [ recon(z ~ q) + beta * KL(q || p) ]  +  gsnn_weight * recon(z = mu_p)
  + nll_weight * Gaussian NLL of the decoder sd at z ~ q, on the detached mean,
where recon = 0.5 * weight * ((iv_hat - iv_true) / recon_sd_iv)^2 on every cell (missing cells
weigh ``missing_weight``): a Gaussian likelihood of fixed sd, i.e. the ELBO with beta-weighted KL.
The z = mu_p term (the "GSNN" term of Sohn et al.) trains the path used at test time.

Repair (``predict``): the decoder mean at z = mu_p; sd^2 = variance of the decoded means over
fixed antithetic draws z = mu_p +- sigma_p * eps plus the decoder variance at mu_p, times the squared
``sd_scale`` fitted on the validation set (so validation 80 % intervals cover 80 %).

Training lives in core.training.vae (``python -m core.cli train vae``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from core.engine.grid import N_K, N_T, W_FLOOR, iv_to_w, w_to_iv
from core.repairers.base import Prediction, Repairer, check_weights
from core.repairers.weights import WeightsError, load_manifest, load_state, manifest_float, manifest_int
from core.settings import WEIGHTS_DIR

N_CELLS = N_T * N_K
LOG_LEVEL_CENTRE = math.log(0.25)   # log of a typical level, so the level input is O(1)
U_CLAMP = (-3.0, 3.0)               # iv within [level / 20, 20 level]
LOGVAR_CLAMP = (-14.0, 0.0)         # decoder sd within [1e-3, 1] x level


@dataclass
class VAEConfig:
    z_dim: int = 16
    hidden: int = 256
    depth: int = 2            # hidden layers in each network
    n_samples: int = 4        # z draws (each used with its antithetic -z) for the sd at inference


def _mlp(n_in: int, hidden: int, depth: int) -> nn.Sequential:
    layers = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.SiLU()]
    return nn.Sequential(*layers)


class SurfaceVAE(nn.Module):
    """Conditioning network (prior p(z | quotes)) and decoder; what ships and runs at test time."""

    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        self.config = config
        self.cond = _mlp(2 * N_CELLS + 1, config.hidden, config.depth)
        self.prior_head = nn.Linear(config.hidden, 2 * config.z_dim)
        # The decoder's first layer acts on [z, h]; split in two so that the h part is computed
        # once per surface and only the cheap z part per draw of z.
        self.dec_z = nn.Linear(config.z_dim, config.hidden)
        self.dec_h = nn.Linear(config.hidden, config.hidden, bias=False)
        self.dec = _mlp(config.hidden, config.hidden, config.depth - 1)
        self.mean_head = nn.Linear(config.hidden, N_CELLS)
        self.logvar_head = nn.Linear(config.hidden, N_CELLS)
        with torch.no_grad():
            self.logvar_head.bias.fill_(-7.0)   # start near a 3 % relative sd
        # Fixed standard-normal draws for the sd: deterministic, and the same for every surface.
        eps = torch.randn(config.n_samples, config.z_dim, generator=torch.Generator().manual_seed(0))
        self.register_buffer("eps", eps, persistent=False)

    def condition(self, x: torch.Tensor) -> tuple:
        """Inputs (b, 443) -> (h, mu_p, logvar_p)."""
        h = self.cond(x)
        mu, logvar = self.prior_head(h).chunk(2, dim=-1)
        return h, mu, logvar.clamp(-10.0, 4.0)

    def decode(self, z: torch.Tensor, h: torch.Tensor, h_dec: torch.Tensor | None = None,
               with_logvar: bool = True) -> tuple:
        """(z, h) -> (u, s): log(iv / level) and log relative decoder variance, (b, 221) each
        (s None unless ``with_logvar``). ``h_dec = dec_h(h)`` may be passed in precomputed."""
        g = self.dec(nn.functional.silu(self.dec_z(z) + (self.dec_h(h) if h_dec is None else h_dec)))
        u = self.mean_head(g).clamp(*U_CLAMP)
        return u, (self.logvar_head(g).clamp(*LOGVAR_CLAMP) if with_logvar else None)


class PosteriorNet(nn.Module):
    """q(z | clean surface, quotes): reads log(iv_true / level) and the conditioning features h."""

    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        self.body = _mlp(N_CELLS + config.hidden, config.hidden, config.depth)
        self.head = nn.Linear(config.hidden, 2 * config.z_dim)

    def forward(self, u_true: torch.Tensor, h: torch.Tensor) -> tuple:
        mu, logvar = self.head(self.body(torch.cat([u_true, h], dim=-1))).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 4.0)


def make_inputs(iv_obs: np.ndarray, observed: np.ndarray) -> tuple:
    """Quoted iv (n, 13, 17) (any value where not quoted) and mask -> (x (n, 443) float32, level (n,)).

    level is the mean quoted implied vol of each surface (vol units).
    """
    n = iv_obs.shape[0]
    obs = observed.reshape(n, -1)
    iv = np.where(obs, iv_obs.reshape(n, -1), 1.0)
    level = np.where(obs, iv, 0.0).sum(1) / np.maximum(obs.sum(1), 1)
    level = np.where(obs.any(1), level, 0.2)
    u_obs = np.where(obs, np.log(np.maximum(iv, 1e-4) / level[:, None]), 0.0)
    x = np.concatenate([u_obs, obs.astype(np.float64), np.log(level)[:, None] - LOG_LEVEL_CENTRE], axis=1)
    return torch.from_numpy(x.astype(np.float32)), level


def predict(model: SurfaceVAE, iv_obs: np.ndarray, observed: np.ndarray, sd_scale: float = 1.0,
            with_sd: bool = True, batch_size: int = 4096, threads: int | None = 1) -> tuple:
    """Repair. Returns (iv_mean, sd_iv) (n, 13, 17) float64 in vol units; sd_iv None unless with_sd.

    ``threads``: torch intra-op threads for the call (restored after; None leaves them). One by
    default: the matrices are small, and on the shared 2-core machine two threads made batched
    inference 4x and a single surface 10x slower (measured under load), as with BLAS in core/__init__.
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _predict(model, iv_obs, observed, sd_scale, with_sd, batch_size)
    finally:
        torch.set_num_threads(previous)


def _predict(model, iv_obs, observed, sd_scale, with_sd, batch_size) -> tuple:
    model.eval()
    means, sds = [], []
    with torch.no_grad():
        for start in range(0, iv_obs.shape[0], batch_size):
            x, level = make_inputs(iv_obs[start:start + batch_size], observed[start:start + batch_size])
            level_t = torch.from_numpy(level.astype(np.float32))[:, None]
            h, mu, logvar = model.condition(x)
            h_dec = model.dec_h(h)
            u0, lv0 = model.decode(mu, h, h_dec, with_logvar=with_sd)
            iv0 = level_t * torch.exp(u0)
            means.append(iv0.double().numpy())
            if not with_sd:
                continue
            # Spread of the decoded means over antithetic draws of z from p(z | quotes), plus the
            # decoder variance (taken at z = mu_p: it varies little with z, and this halves the cost).
            b, s = x.shape[0], model.eps.shape[0]
            eps = torch.cat([model.eps, -model.eps])[:, None, :]
            z = (mu[None] + torch.exp(0.5 * logvar)[None] * eps).reshape(2 * s * b, -1)
            u, _ = model.decode(z, h, h_dec.repeat(2 * s, 1), with_logvar=False)
            iv_s = level_t[None] * torch.exp(u.view(2 * s, b, -1))
            var = iv_s.var(0, unbiased=False) + level_t**2 * torch.exp(lv0)
            sds.append((sd_scale * torch.sqrt(var)).double().numpy())
    shape = (-1, N_T, N_K)
    iv_mean = np.concatenate(means).reshape(shape)
    return iv_mean, (np.concatenate(sds).reshape(shape) if with_sd else None)


MAX_SD_SCALE = 1e3   # a validation-fitted sd multiplier is O(1); beyond this the file is wrong


def vae_config(manifest: dict, where: str) -> VAEConfig:
    """The VAEConfig a manifest's "model" section describes (bounded sizes); WeightsError otherwise."""
    model, where = manifest.get("model", {}), f"{where}: model"
    return VAEConfig(z_dim=manifest_int(model, "z_dim", VAEConfig.z_dim, 1, 256, where),
                     hidden=manifest_int(model, "hidden", VAEConfig.hidden, 1, 4096, where),
                     depth=manifest_int(model, "depth", VAEConfig.depth, 1, 16, where),
                     n_samples=manifest_int(model, "n_samples", VAEConfig.n_samples, 1, 256, where))


def load_vae(path: Path = WEIGHTS_DIR / "vae.pt") -> tuple:
    """(model, sd_scale) from ``path`` and its manifest; WeightsError with the reason otherwise."""
    path = Path(path)
    state = load_state(path, "vae")
    manifest = load_manifest(path)
    where = f"weights manifest of {path}"
    config = vae_config(manifest, where)
    sd_scale = manifest_float(manifest, "sd_scale", 1.0, 0.0, MAX_SD_SCALE, where)
    try:
        model = SurfaceVAE(config)
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise WeightsError(f"weights file {path} does not fit the VAE: {reason}") from None
    model.eval()
    return model, sd_scale


@lru_cache(maxsize=4)
def _cached_vae(path: str):
    from core.repairers.vae import load_vae

    return load_vae(Path(path))


class VAERepairer(Repairer):
    """Mask-conditional VAE (core.repairers.vae): decoder mean at the prior mean of z; sd from z draws and
    the decoder variance, scaled on its validation set."""

    name = "vae"
    options = ("weights",)
    has_sd = True
    needs_weights = True

    def __init__(self, weights: str | Path = WEIGHTS_DIR / "vae.pt"):
        self.weights = check_weights(weights)

    def load(self) -> None:
        self.model  # noqa: B018 - the cached load raises WeightsError for a bad file

    @property
    def model(self):
        return _cached_vae(str(self.weights.resolve()))

    def predict(self, w_obs, observed):
        model, sd_scale = self.model
        iv_obs = w_to_iv(w_obs)
        iv_mean, sd_iv = predict(model, iv_obs, observed, sd_scale)
        return Prediction(np.maximum(iv_to_w(iv_mean), W_FLOOR), sd_iv)
