"""Train the mask-conditional VAE (core.repairers.vae) on fresh synthetic surfaces every epoch.

Mixed families, both mask regimes, 18 bp noise; seeds 200000+ for training and 250000+ for
validation, disjoint from the benchmark's. ``python -m core.cli train vae`` writes weights/vae.pt
with the manifest weights/vae.json.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.stats import norm

from core.engine.grid import iv_to_w, w_to_iv
from core.seeds import VAE_TRAIN_SEED, VAE_VALIDATION_SEED
from core.repairers.vae import (
    N_CELLS,
    PosteriorNet,
    SurfaceVAE,
    VAEConfig,
    make_inputs,
    predict,
)
from core.repairers.weights import save_weights
from core.settings import WEIGHTS_DIR
from core.synth.families import generate
from core.synth.missingness import NOISE_BP, make_masks, observe
from core.training.common import Progress, provenance, trainer_parser

# --------------------------------------------------------------------------- training

@dataclass
class VAETrainConfig:
    families: tuple = ("ssvi", "shifted_ssvi", "sabr_event")
    family_weights: tuple = (0.2, 0.4, 0.4)
    regimes: tuple = ("regular", "adversarial")
    noise_bp: float = NOISE_BP
    epochs: int = 44
    surfaces_per_epoch: int = 32768      # fresh every epoch
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-5
    grad_clip: float = 5.0
    beta: float = 1.0
    kl_warmup_epochs: int = 4
    gsnn_weight: float = 0.5
    nll_weight: float = 0.05
    recon_sd_iv: float = 0.005
    missing_weight: float = 2.0
    n_val_per_cell: int = 250            # shifted_ssvi, sabr_event x regular, adversarial
    # One thread: on the shared, loaded 2-core machine two threads ran 3-30x slower (measured).
    threads: int = 1
    time_budget_s: float = 540.0         # training time cap; the learning-rate schedule honours it
    seed: int = 7
    # Seeds (benchmark test seeds are 1001-4004): training chunk c uses surface seed
    # train_seed + c, mask seed train_seed + 10000 + c, noise seed train_seed + 20000 + c.
    train_seed: int = VAE_TRAIN_SEED
    val_seed: int = VAE_VALIDATION_SEED
    model: VAEConfig = field(default_factory=VAEConfig)


VAL_CELLS = (("shifted_ssvi", "regular"), ("shifted_ssvi", "adversarial"),
             ("sabr_event", "regular"), ("sabr_event", "adversarial"))


def make_batch(family: str, regime: str, n: int, seed: int, noise_bp: float = NOISE_BP) -> tuple:
    """(iv_true, iv_obs, observed), each (n, 13, 17): surfaces, masks and noise from three
    seeds (seed, seed + 10000, seed + 20000), so no two of the streams share draws."""
    w_true = generate(family, n, seed)
    observed = make_masks(regime, n, seed + 10000)
    iv_obs = np.nan_to_num(observe(w_true, observed, seed + 20000, noise_bp), nan=1.0)
    return w_to_iv(w_true), iv_obs, observed


def _epoch_data(cfg: VAETrainConfig, epoch: int) -> tuple:
    parts, chunk = [], epoch * len(cfg.families) * len(cfg.regimes)
    weights = np.asarray(cfg.family_weights, float) / np.sum(cfg.family_weights)
    for f, family in enumerate(cfg.families):
        for regime in cfg.regimes:
            n = int(round(cfg.surfaces_per_epoch * weights[f] / len(cfg.regimes)))
            parts.append(make_batch(family, regime, n, cfg.train_seed + chunk, cfg.noise_bp))
            chunk += 1
    assert chunk < 10000, "training seeds would run into the mask/noise seed ranges"
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def validation_data(cfg: VAETrainConfig) -> list:
    return [(family, regime) + make_batch(family, regime, cfg.n_val_per_cell, cfg.val_seed + i, cfg.noise_bp)
            for i, (family, regime) in enumerate(VAL_CELLS)]


def validation_scores(model: SurfaceVAE, val: list) -> dict:
    """Per validation cell: mean over surfaces of the missing-point RMSE (iv units) after the
    calendar projection, as the benchmark scores; plus the mean over cells ("score")."""
    scores = {}
    for family, regime, iv_true, iv_obs, observed in val:
        iv_hat, _ = predict(model, iv_obs, observed, with_sd=False)
        w_cal = np.maximum.accumulate(iv_to_w(iv_hat), axis=-2)
        iv_cal = w_to_iv(w_cal)
        missing = ~observed
        per_surface = np.sqrt(np.where(missing, (iv_cal - iv_true) ** 2, 0).sum((1, 2)) / missing.sum((1, 2)))
        scores[f"{family}/{regime}"] = float(per_surface.mean())
    scores["score"] = float(np.mean(list(scores.values())))
    return scores


def fit_sd_scale(model: SurfaceVAE, val: list, level: float = 0.80) -> float:
    """The factor on the sd that makes central ``level`` intervals cover ``level`` of the missing
    cells of the validation set (pooled over its cells)."""
    ratios = []
    for _, _, iv_true, iv_obs, observed in val:
        iv_hat, sd = predict(model, iv_obs, observed)
        missing = ~observed
        ratios.append(np.abs(iv_hat - iv_true)[missing] / np.maximum(sd[missing], 1e-8))
    return float(np.quantile(np.concatenate(ratios), level) / norm.ppf(0.5 + level / 2))


def _kl(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians, summed over z, (b,)."""
    return 0.5 * (logvar_p - logvar_q + (torch.exp(logvar_q) + (mu_q - mu_p) ** 2) * torch.exp(-logvar_p)
                  - 1.0).sum(-1)


def vae_loss(model: SurfaceVAE, post: PosteriorNet, x, level, iv_true, missing, cfg: VAETrainConfig,
             beta: float) -> tuple:
    """The loss of the module docstring for one batch; returns (loss, parts dict)."""
    h, mu_p, logvar_p = model.condition(x)
    u_true = torch.log(iv_true / level)
    mu_q, logvar_q = post(u_true, h)
    z = mu_q + torch.exp(0.5 * logvar_q) * torch.randn_like(mu_q)
    weight = 1.0 + (cfg.missing_weight - 1.0) * missing

    def recon(u):
        return (0.5 * weight * ((level * torch.exp(u) - iv_true) / cfg.recon_sd_iv) ** 2).mean(-1)

    u_q, logvar = model.decode(z, h)
    u_p, _ = model.decode(mu_p, h)
    kl = _kl(mu_q, logvar_q, mu_p, logvar_p) / N_CELLS
    sq_rel = ((torch.exp(u_q.detach()) - iv_true / level) ** 2)
    nll = 0.5 * (sq_rel * torch.exp(-logvar) + logvar).mean(-1)
    rec_q, rec_p = recon(u_q), recon(u_p)
    loss = ((1 - cfg.gsnn_weight) * (rec_q + beta * kl) + cfg.gsnn_weight * rec_p + cfg.nll_weight * nll).mean()
    return loss, {"recon_q": float(rec_q.mean().detach()), "recon_p": float(rec_p.mean().detach()),
                  "kl": float(kl.mean().detach() * N_CELLS)}


def train(cfg: VAETrainConfig = VAETrainConfig(), progress: bool = True, log=None) -> tuple:
    """Train on fresh data every epoch; keep the epoch with the best validation score.

    Returns (model at its best epoch, history dict). ``log(str)`` receives one line per epoch.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model, post = SurfaceVAE(cfg.model), PosteriorNet(cfg.model)
    params = list(model.parameters()) + list(post.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    val = validation_data(cfg)
    history = {"train_loss": [], "kl": [], "val_rmse_iv": [], "val_cells": [], "epoch_seconds": []}
    best_val, best_state, best_epoch = float("inf"), None, -1
    surfaces_seen = 0
    bar = Progress(cfg.epochs, progress)
    start = time.time()
    done = False
    for epoch in range(cfg.epochs):
        t0 = time.time()
        model.train()
        post.train()
        iv_true, iv_obs, observed = _epoch_data(cfg, epoch)
        x, level = make_inputs(iv_obs, observed)
        level_t = torch.from_numpy(level.astype(np.float32))[:, None]
        y = torch.from_numpy(iv_true.reshape(len(iv_true), -1).astype(np.float32))
        m = torch.from_numpy((~observed).reshape(len(iv_true), -1).astype(np.float32))
        beta = cfg.beta * min(1.0, (epoch + 1) / max(cfg.kl_warmup_epochs, 1))
        order = torch.from_numpy(rng.permutation(len(x)))
        total, kl_total, batches = 0.0, 0.0, 0
        for b in range(0, len(x), cfg.batch_size):
            # Cosine learning rate on the larger of epoch progress and time progress, so that on
            # a loaded machine the run still anneals and ends within its time budget.
            frac = max((epoch + b / len(x)) / cfg.epochs, (time.time() - start) / cfg.time_budget_s)
            if frac >= 1.0:
                done = True
                break
            for group in opt.param_groups:
                group["lr"] = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * frac))
            idx = order[b:b + cfg.batch_size]
            loss, parts = vae_loss(model, post, x[idx], level_t[idx], y[idx], m[idx], cfg, beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, max_norm=cfg.grad_clip)
            opt.step()
            total += float(loss.detach())
            surfaces_seen += len(idx)
            kl_total += parts["kl"]
            batches += 1
        if batches == 0:
            break
        scores = validation_scores(model, val)
        history["train_loss"].append(total / batches)
        history["kl"].append(kl_total / batches)
        history["val_rmse_iv"].append(scores["score"])
        history["val_cells"].append({k: v for k, v in scores.items() if k != "score"})
        history["epoch_seconds"].append(time.time() - t0)
        if scores["score"] < best_val:
            best_val, best_epoch = scores["score"], epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        text = f"loss {total / batches:.4f} kl {kl_total / batches:.2f} val {scores['score']:.5f} best {best_val:.5f}"
        bar.update(epoch + 1, text)
        if log:
            log(f"epoch {epoch + 1} {text} " + " ".join(f"{k} {v:.5f}" for k, v in scores.items() if k != "score")
                + f" ({time.time() - t0:.1f} s)")
        if done:
            bar.update(cfg.epochs, f"time budget reached in epoch {epoch + 1}")
            break
    model.load_state_dict(best_state)
    model.eval()
    sd_scale = fit_sd_scale(model, val)
    history.update(best_val_rmse_iv=best_val, best_epoch=best_epoch, epochs_run=len(history["train_loss"]),
                   surfaces_seen=surfaces_seen,
                   sd_scale=sd_scale, seconds=time.time() - start)
    return model, history


def build_manifest(cfg: VAETrainConfig, history: dict) -> dict:
    """Everything needed to tell how a weights file was made."""
    n_chunks = history["epochs_run"] * len(cfg.families) * len(cfg.regimes)
    return {
        "name": "vae",
        "description": "Mask-conditional VAE (CVAE): MLP conditioning/prior network, MLP posterior (training "
                       "only), MLP decoder of (z, conditioning features) to iv mean and sd",
        "model": asdict(cfg.model),
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "model"},
        "data": {"train": {"families": list(cfg.families), "family_weights": list(cfg.family_weights),
                           "regimes": list(cfg.regimes), "surfaces_per_epoch": cfg.surfaces_per_epoch,
                           "epochs_run": history["epochs_run"],
                           "surfaces_trained_on": history["surfaces_seen"],
                           "surface_seeds": [cfg.train_seed, cfg.train_seed + n_chunks - 1],
                           "mask_seeds": [cfg.train_seed + 10000, cfg.train_seed + 10000 + n_chunks - 1],
                           "noise_seeds": [cfg.train_seed + 20000, cfg.train_seed + 20000 + n_chunks - 1],
                           "noise_bp": cfg.noise_bp},
                 "validation": {"cells": [f"{f}/{r}" for f, r in VAL_CELLS], "n_per_cell": cfg.n_val_per_cell,
                                "surface_seeds": [cfg.val_seed, cfg.val_seed + len(VAL_CELLS) - 1],
                                "mask_seeds": [cfg.val_seed + 10000, cfg.val_seed + 10000 + len(VAL_CELLS) - 1],
                                "noise_seeds": [cfg.val_seed + 20000, cfg.val_seed + 20000 + len(VAL_CELLS) - 1],
                                "score": "mean over cells of the per-surface missing-point RMSE (iv units), "
                                         "calendar-projected"}},
        "history": {"train_loss": [round(x, 6) for x in history["train_loss"]],
                    "kl_nats": [round(x, 3) for x in history["kl"]],
                    "val_rmse_iv": [round(x, 6) for x in history["val_rmse_iv"]],
                    "epoch_seconds": [round(x, 1) for x in history["epoch_seconds"]]},
        "val_cells_at_best": {k: round(v, 6) for k, v in history["val_cells"][history["best_epoch"] - 1].items()},
        "best_val_rmse_iv": round(history["best_val_rmse_iv"], 6),
        "best_epoch": history["best_epoch"],
        "sd_scale": round(history["sd_scale"], 5),
        "train_seconds": round(history["seconds"], 1),
        **provenance(cfg.threads),
    }


def main(argv=None) -> int:
    parser = trainer_parser("Train the mask-conditional VAE and write weights/<name>.pt plus a JSON manifest.", "vae", WEIGHTS_DIR, VAETrainConfig.epochs, VAETrainConfig.threads)
    parser.add_argument("--surfaces-per-epoch", type=int, default=VAETrainConfig.surfaces_per_epoch)
    parser.add_argument("--log", action="store_true", help="print one line per epoch")
    args = parser.parse_args(argv)
    cfg = VAETrainConfig(epochs=args.epochs, surfaces_per_epoch=args.surfaces_per_epoch, threads=args.threads)
    model, history = train(cfg, progress=not args.quiet, log=(lambda s: print(s, flush=True)) if args.log else None)
    path = Path(args.out_dir) / f"{args.name}.pt"
    manifest = build_manifest(cfg, history)
    manifest["name"] = args.name
    save_weights(model, path, manifest)
    print(f"best validation missing-point RMSE {history['best_val_rmse_iv']:.5f} (iv units) at epoch "
          f"{history['best_epoch']}; sd scale {history['sd_scale']:.3f}; trained in {history['seconds']:.1f} s; "
          f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
