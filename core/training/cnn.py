"""Loss and training loop of the post's CNN; ``python -m core.cli train cnn`` trains and ships it.

Recipe (the post's): 1600 training-family SSVI surfaces under the regular mask with 18 bp quote
noise, 200 validation surfaces from other seeds; loss in w / W_SCALE units = missing-weighted MSE
(x5 on missing cells) + 0.1 x heteroscedastic NLL after a 10-epoch warm-up + 80 x calendar
penalty (on real w) + 0.05 x smoothness; AdamW (lr 1e-3, wd 1e-4), cosine over 60 epochs,
batch 128, gradient clip 1.0; the checkpoint with the best validation missing-point RMSE
(implied-vol units) is kept.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.engine.grid import iv_to_w, w_to_iv
from core.seeds import CNN_SEED, CNN_TRAIN, CNN_VALIDATION
from core.repairers.cnn import W_SCALE, CNNConfig, RepairCNN, make_inputs, predict
from core.repairers.weights import save_weights
from core.settings import WEIGHTS_DIR
from core.synth.families import generate
from core.synth.missingness import NOISE_BP, make_masks, observe
from core.training.common import Progress, provenance, trainer_parser


@dataclass
class LossConfig:
    missing_weight: float = 5.0
    nll_weight: float = 0.10
    calendar_weight: float = 80.0
    smoothness_weight: float = 0.05


@dataclass
class TrainConfig:
    n_train: int = 1600
    n_val: int = 200
    family: str = "ssvi"
    regime: str = "regular"
    noise_bp: float = NOISE_BP
    epochs: int = 60
    nll_warmup_epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    threads: int = 2
    # Seeds are disjoint from the benchmark's test seeds (core.evaluation.benchmark.TEST_CELLS).
    seed: int = CNN_SEED
    train_surface_seed: int = CNN_TRAIN["surface"]
    train_mask_seed: int = CNN_TRAIN["mask"]
    val_surface_seed: int = CNN_VALIDATION["surface"]
    val_mask_seed: int = CNN_VALIDATION["mask"]
    loss: LossConfig = field(default_factory=LossConfig)
    model: CNNConfig = field(default_factory=CNNConfig)


def calendar_penalty(mean_norm: torch.Tensor) -> torch.Tensor:
    """Mean of the negative parts of dw along T, in real total-variance units."""
    dw = (mean_norm[:, :, 1:, :] - mean_norm[:, :, :-1, :]) * W_SCALE
    return torch.mean(F.relu(-dw))


def smoothness_penalty(mean_norm: torch.Tensor) -> torch.Tensor:
    """Mean squared second differences along k and along T (discourages wing ripples)."""
    d2k = mean_norm[..., 2:] - 2.0 * mean_norm[..., 1:-1] + mean_norm[..., :-2]
    d2t = mean_norm[..., 2:, :] - 2.0 * mean_norm[..., 1:-1, :] + mean_norm[..., :-2, :]
    return torch.mean(d2k * d2k) + torch.mean(d2t * d2t)


def repair_loss(mean_norm, log_var, target_norm, observed, cfg: LossConfig, use_nll: bool) -> torch.Tensor:
    """The post's loss, all tensors (b, 1, 13, 17); ``observed`` is 1.0 where quoted."""
    weights = 1.0 + (cfg.missing_weight - 1.0) * (1.0 - observed)
    sq = (mean_norm - target_norm) ** 2
    loss = torch.mean(weights * sq)
    if use_nll and cfg.nll_weight:
        loss = loss + cfg.nll_weight * 0.5 * torch.mean(weights * (sq * torch.exp(-log_var) + log_var))
    if cfg.calendar_weight:
        loss = loss + cfg.calendar_weight * calendar_penalty(mean_norm)
    if cfg.smoothness_weight:
        loss = loss + cfg.smoothness_weight * smoothness_penalty(mean_norm)
    return loss


def make_dataset(family: str, regime: str, n: int, surface_seed: int, mask_seed: int, noise_seed: int,
                 noise_bp: float) -> tuple:
    """(w_true, w_obs, observed) for n surfaces; w_obs is zero where not observed."""
    w_true = generate(family, n, surface_seed)
    observed = make_masks(regime, n, mask_seed)
    w_obs = np.nan_to_num(iv_to_w(observe(w_true, observed, noise_seed, noise_bp)))
    return w_true, w_obs, observed


def missing_rmse_iv(w_pred: np.ndarray, w_true: np.ndarray, observed: np.ndarray) -> float:
    """Pooled RMSE in implied-vol units over all missing cells (the checkpoint criterion)."""
    err = (w_to_iv(w_pred) - w_to_iv(w_true))[~observed]
    return float(np.sqrt(np.mean(err**2)))


def train(cfg: TrainConfig = TrainConfig(), progress: bool = True) -> tuple:
    """Train the CNN. Returns (model at its best validation epoch, history dict)."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    w_true, w_obs, observed = make_dataset(cfg.family, cfg.regime, cfg.n_train, cfg.train_surface_seed,
                                           cfg.train_mask_seed, cfg.seed + 101, cfg.noise_bp)
    val_true, val_obs, val_observed = make_dataset(cfg.family, cfg.regime, cfg.n_val, cfg.val_surface_seed,
                                                   cfg.val_mask_seed, cfg.seed + 202, cfg.noise_bp)
    x_train = make_inputs(w_obs, observed)
    y_train = torch.from_numpy((w_true / W_SCALE)[:, None].astype(np.float32))
    m_train = torch.from_numpy(observed[:, None].astype(np.float32))

    model = RepairCNN(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    history = {"train_loss": [], "val_rmse_iv": []}
    best_val, best_state, best_epoch = float("inf"), None, -1
    bar = Progress(cfg.epochs, progress)
    start = time.time()
    for epoch in range(cfg.epochs):
        model.train()
        use_nll = epoch >= cfg.nll_warmup_epochs
        order = rng.permutation(cfg.n_train)
        total, batches = 0.0, 0
        for b in range(0, cfg.n_train, cfg.batch_size):
            idx = torch.from_numpy(order[b:b + cfg.batch_size])
            mean_norm, log_var = model(x_train[idx])
            loss = repair_loss(mean_norm, log_var, y_train[idx], m_train[idx], cfg.loss, use_nll)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=cfg.grad_clip)
            opt.step()
            total += float(loss.detach())
            batches += 1
        scheduler.step()
        val_w, _ = predict(model, val_obs, val_observed)
        val_rmse = missing_rmse_iv(val_w, val_true, val_observed)
        history["train_loss"].append(total / batches)
        history["val_rmse_iv"].append(val_rmse)
        if val_rmse < best_val:
            best_val, best_epoch = val_rmse, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        bar.update(epoch + 1, f"loss {total / batches:+.4f} val {val_rmse:.5f} best {best_val:.5f}")
    model.load_state_dict(best_state)
    model.eval()
    history.update(best_val_rmse_iv=best_val, best_epoch=best_epoch, seconds=time.time() - start)
    return model, history


def build_manifest(cfg: TrainConfig, history: dict) -> dict:
    """Everything needed to tell how a weights file was made."""
    return {
        "name": "cnn",
        "description": "The post's mask-conditional CNN (4 x 3x3 conv, width 32, SiLU; mean and log-variance heads)",
        "model": asdict(cfg.model),
        "train_config": {k: v for k, v in asdict(cfg).items() if k not in ("model",)},
        "data": {"train": {"family": cfg.family, "regime": cfg.regime, "n": cfg.n_train,
                           "surface_seed": cfg.train_surface_seed, "mask_seed": cfg.train_mask_seed,
                           "noise_seed": cfg.seed + 101, "noise_bp": cfg.noise_bp},
                 "validation": {"family": cfg.family, "regime": cfg.regime, "n": cfg.n_val,
                                "surface_seed": cfg.val_surface_seed, "mask_seed": cfg.val_mask_seed,
                                "noise_seed": cfg.seed + 202, "noise_bp": cfg.noise_bp}},
        "history": {"train_loss": [round(x, 6) for x in history["train_loss"]],
                    "val_rmse_iv": [round(x, 6) for x in history["val_rmse_iv"]]},
        "best_val_rmse_iv": round(history["best_val_rmse_iv"], 6),
        "best_epoch": history["best_epoch"],
        "train_seconds": round(history["seconds"], 1),
        **provenance(cfg.threads),
    }


def main(argv=None) -> int:
    parser = trainer_parser("Train the post's repair CNN and write weights/<name>.pt plus a JSON manifest.", "cnn", WEIGHTS_DIR, TrainConfig.epochs, TrainConfig.threads)
    parser.add_argument("--n-train", type=int, default=TrainConfig.n_train)
    args = parser.parse_args(argv)
    cfg = TrainConfig(epochs=args.epochs, n_train=args.n_train, threads=args.threads)
    model, history = train(cfg, progress=not args.quiet)
    path = Path(args.out_dir) / f"{args.name}.pt"
    manifest = build_manifest(cfg, history)
    manifest["name"] = args.name
    save_weights(model, path, manifest)
    print(f"best validation missing-point RMSE {history['best_val_rmse_iv']:.5f} (iv units) at epoch "
          f"{history['best_epoch']}; trained in {history['seconds']:.1f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
