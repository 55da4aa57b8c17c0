"""Throwaway study script (issue 26, recipe (c)): a 3D-VAE-GAN trained from scratch.

Encoder = the shape encoder's conv trunk with a (mu, logvar) head; decoder = the v2/v3 generator
network; a voxel discriminator on decoded prior samples z ~ N(0, I). Loss of E and G:
  recon BCE (occupied x1.5, mean per voxel) + beta * KL / R^3 (the ELBO's ratio per voxel)
  + adv * non-saturating GAN loss of G(z_prior)
D: BCE real vs G(z_prior), updated while its accuracy <= 0.8 (the paper's rule).
Writes a pipeline folder (generator with g_clean join, discriminator; no prior: N(0, I)).

    PYTHONPATH=. python study/vaegan_c.py --minutes 115 --out runs/vaegan_c2   # the study's row (c)
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from train.common import augment
from train.gan import d_accuracy, reconstruction_loss, split_by_id
from vaegan.config import ModelConfig
from vaegan.datasets import load_chairs
from vaegan.models import Discriminator, Generator, ShapeEncoder
from vaegan.pipeline import ChairPipeline
from train.photo_encoder import detached_copy

p = argparse.ArgumentParser()
p.add_argument("--data", default="../shared/data/modelnet10_chair_vol30")
p.add_argument("--minutes", type=float, default=50)
p.add_argument("--beta", type=float, default=1.0)
p.add_argument("--adv", type=float, default=0.01)
p.add_argument("--out", default="runs/vaegan_c")
args = p.parse_args()
torch.set_num_threads(1)
torch.set_flush_denormal(True)
torch.manual_seed(0)

cfg = ModelConfig(z_dim=128, g_widths=(128, 64, 32), g_clean="join")
chairs, names = load_chairs(args.data, "train", 32)
train_idx, _ = split_by_id(names, 48, 0)
data = torch.from_numpy(chairs[train_idx])

enc = ShapeEncoder(cfg)
enc.head = nn.Linear(enc.head.in_features, 2 * cfg.z_dim)  # (mu, logvar)
gen, disc = Generator(cfg), Discriminator(cfg)
opt_eg = torch.optim.Adam(list(enc.parameters()) + list(gen.parameters()), lr=1e-3)
opt_d = torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.5, 0.999))
rng = torch.Generator().manual_seed(0)
R3 = 32 ** 3
t0, step, acc = time.time(), 0, 0.5
import math
def save():
    ChairPipeline(detached_copy(gen), discriminator=detached_copy(disc)).save_pretrained(args.out)
    json.dump({"steps": step, "minutes_done": round((time.time() - t0) / 60, 1), **vars(args)},
              open(f"{args.out}/vaegan_c.json", "w"), indent=2)
last_save = time.time()
while time.time() - t0 < 60 * args.minutes:
    progress = (time.time() - t0) / (60 * args.minutes)
    for group in opt_eg.param_groups:  # cosine 1e-3 -> 1e-5 over the budget, as train autoencoder
        group["lr"] = 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi * progress))
    x = data[torch.randint(len(data), (32,), generator=rng)].float()
    x = augment(x, True, 1, rng)[:, None]
    z_prior = torch.randn(32, cfg.z_dim, generator=rng)
    # D step
    with torch.no_grad():
        fake = torch.sigmoid(gen.logits(z_prior))
    real_logit, fake_logit = disc(x), disc(fake)
    acc = float(d_accuracy(real_logit, fake_logit))
    if acc <= 0.8:  # the paper's rule, on this batch
        d_loss = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit)) + \
            F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    # E + G step
    disc.requires_grad_(False)
    h = enc.head(enc.net(x).flatten(1))
    mu, logvar = h.chunk(2, dim=1)
    z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=rng)
    recon = reconstruction_loss(gen.logits(z), x, 1.5)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
    fake_logit = disc(torch.sigmoid(gen.logits(z_prior)))
    adv = F.binary_cross_entropy_with_logits(fake_logit, torch.ones_like(fake_logit))
    loss = recon + args.beta * kl / R3 + args.adv * adv
    opt_eg.zero_grad(set_to_none=True)
    loss.backward()
    opt_eg.step()
    disc.requires_grad_(True)
    step += 1
    if time.time() - last_save > 15 * 60:
        save(); last_save = time.time()
    if step % 100 == 0:
        print(f"step {step} ({(time.time() - t0) / 60:.1f} min): recon {recon.item():.4f} kl {kl.item():.1f} "
              f"adv {adv.item():.3f} D acc {acc:.2f}", flush=True)
save()
print("saved", args.out, step, "steps")
