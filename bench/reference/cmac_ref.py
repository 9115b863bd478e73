#!/usr/bin/python3
"""CMAC in plain PyTorch: the reference a PyTorch user would run, for the
benchmarks in bench/ (docs/benchmarks.md).

Same architecture, losses, optimiser and inputs as cmac's native engine
(native/core): torchvision's R(2+1)D building blocks (BasicBlock,
Conv2Plus1D) at the widths of a cmac config, torchvision's resnet BasicBlock
for the audio ResNet-18 (1-channel stem, layers 3-4 strided (1, 2) in
(freq, time)), torchaudio's MelSpectrogram front end, the projection and
attention heads, the CMAC losses of native/core/losses.cpp and the step of
native/core/cmac_model.cpp, and torch.optim.Adam (single-tensor path, the
update rule cmac's optim.cpp copies).

Run with Debian's /usr/bin/python3 (apt python3-torch, -torchvision,
-torchaudio, -av; `npm run setup -- --python`). No pip packages: safetensors
are read and written by the small functions below.

Usage:
  cmac_ref.py serve          JSON-lines server on stdin/stdout (the bench driver uses it)
  cmac_ref.py selftest       build both presets, run one step each on random data
  cmac_ref.py matmul --threads N [--n 2048]     torch.mm GFLOP/s (set OPENBLAS_NUM_THREADS=N too)
  cmac_ref.py memtrain --inputs F [--weights W] [--steps 30] [--preset tiny]   peak RSS of a short run
"""
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchaudio
import torchvision
from torchvision.models.resnet import BasicBlock as BasicBlock2d
from torchvision.models.video.resnet import BasicBlock as BasicBlock3d
from torchvision.models.video.resnet import Conv2Plus1D

# safetensors: the shared reader/writer of cmac's Python scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402


# --------------------------------------------------------------------------
# Model (method.md s1-3), widths from a cmac ModelConfig (modelPreset()).
# --------------------------------------------------------------------------
PRESETS = {  # = modelPreset('tiny' | 'paper') of lib/config (the bench passes its own copy)
    "tiny": {"visual": {"planes": [16, 32, 64, 128], "blocks": [2, 2, 2, 2], "stemMid": 11, "lastStride1": True},
             "audio": {"planes": [16, 32, 64, 128], "blocks": [2, 2, 2, 2]}, "embedDim": 128,
             "logmel": {"sampleRate": 16000, "nFft": 1024, "winLength": 400, "hopLength": 160, "nMels": 64, "fMin": 0, "fMax": 8000}},
    "paper": {"visual": {"planes": [64, 128, 256, 512], "blocks": [2, 2, 2, 2], "stemMid": 45, "lastStride1": False},
              "audio": {"planes": [64, 128, 256, 512], "blocks": [2, 2, 2, 2]}, "embedDim": 128,
              "logmel": {"sampleRate": 16000, "nFft": 1024, "winLength": 400, "hopLength": 160, "nMels": 128, "fMin": 0, "fMax": 8000}},
}
DEFAULT_LOSS = {"tau": 0.07, "tauT": 0.1, "lambdaV": 1.0, "lambdaA": 1.0, "withinModal": True, "lossV": True,
                "lossA": True, "targetGrad": False}
DEFAULT_OPTIM = {"name": "adam", "weightDecay": 1e-5, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


class VisualEncoder(nn.Module):
    """torchvision r2plus1d_18 (stem + layer1-4, no pool/fc) built from its own
    blocks with configurable widths; at the paper widths its state_dict equals
    torchvision.models.video.r2plus1d_18()'s minus fc (checked in selftest)."""

    def __init__(self, planes, blocks, stem_mid, last_stride1):
        super().__init__()
        self.stem = nn.Sequential(  # = torchvision R2Plus1dStem with stem_mid / planes[0]
            nn.Conv3d(3, stem_mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False), nn.BatchNorm3d(stem_mid), nn.ReLU(inplace=True),
            nn.Conv3d(stem_mid, planes[0], (3, 1, 1), (1, 1, 1), (1, 0, 0), bias=False), nn.BatchNorm3d(planes[0]), nn.ReLU(inplace=True))
        inplanes = planes[0]
        for l in range(4):
            stride = 1 if l == 0 or (l == 3 and last_stride1) else 2
            layers = []
            for b in range(blocks[l]):
                s = stride if b == 0 else 1
                ds = None
                if b == 0 and (s != 1 or inplanes != planes[l]):
                    ds = nn.Sequential(nn.Conv3d(inplanes, planes[l], 1, stride=Conv2Plus1D.get_downsample_stride(s), bias=False),
                                       nn.BatchNorm3d(planes[l]))
                layers.append(BasicBlock3d(inplanes, planes[l], Conv2Plus1D, s, ds))
                inplanes = planes[l]
            setattr(self, f"layer{l + 1}", nn.Sequential(*layers))
        for m in self.modules():  # torchvision VideoResNet init
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))


class AudioEncoder(nn.Module):
    """torchvision resnet18 layout and keys, 1-channel stem, layers 3-4 strided (1, 2)."""

    def __init__(self, planes, blocks):
        super().__init__()
        self.conv1 = nn.Conv2d(1, planes[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        strides = [(1, 1), (2, 2), (1, 2), (1, 2)]
        inplanes = planes[0]
        for l in range(4):
            layers = []
            for b in range(blocks[l]):
                s = strides[l] if b == 0 else (1, 1)
                ds = None
                if b == 0 and (s != (1, 1) or inplanes != planes[l]):
                    ds = nn.Sequential(nn.Conv2d(inplanes, planes[l], 1, stride=s, bias=False), nn.BatchNorm2d(planes[l]))
                layers.append(BasicBlock2d(inplanes, planes[l], s, ds))
                inplanes = planes[l]
            setattr(self, f"layer{l + 1}", nn.Sequential(*layers))
        for m in self.modules():  # torchvision ResNet init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class Projection(nn.Module):
    """h: Linear(C, C, bias=False) -> BatchNorm1d -> ReLU -> Linear(C, D), pointwise."""

    def __init__(self, c, d):
        super().__init__()
        self.fc1 = nn.Linear(c, c, bias=False)
        self.bn = nn.BatchNorm1d(c)
        self.fc2 = nn.Linear(c, d)

    def forward(self, x):
        lead = x.shape[:-1]
        y = self.fc2(F.relu(self.bn(self.fc1(x.reshape(-1, x.shape[-1])))))
        return y.view(*lead, y.shape[-1])


class AttentionScorer(nn.Module):
    """g: Linear(C, C/4) -> ReLU -> Linear(C/4, 1); B x N x C -> B x N logits."""

    def __init__(self, c):
        super().__init__()
        h = max(1, c // 4)
        self.fc1 = nn.Linear(c, h)
        self.fc2 = nn.Linear(h, 1)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x))).squeeze(-1)


class Heads(nn.Module):
    def __init__(self, cv, ca, d):
        super().__init__()
        self.projV = Projection(cv, d)
        self.projA = Projection(ca, d)
        self.attnV = AttentionScorer(cv)
        self.attnA = AttentionScorer(ca)


class LogMel(nn.Module):
    """torchaudio MelSpectrogram (htk, power 2, periodic Hann of win zero-padded
    to n_fft, center/reflect) -> log(x + 1e-6) -> per-bin standardisation."""

    def __init__(self, o):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=o["sampleRate"], n_fft=o["nFft"], win_length=o["winLength"], hop_length=o["hopLength"],
            f_min=float(o.get("fMin", 0)), f_max=float(o.get("fMax", o["sampleRate"] / 2)), n_mels=o["nMels"],
            power=2.0, center=True, pad_mode="reflect", norm=None, mel_scale="htk")
        self.register_buffer("mean", torch.zeros(o["nMels"]))
        self.register_buffer("std", torch.ones(o["nMels"]))
        self.eps = o.get("logEps", 1e-6)

    def forward(self, wave):
        x = torch.log(self.mel(wave) + self.eps)
        x = (x - self.mean.view(1, -1, 1)) / self.std.view(1, -1, 1)
        return x.unsqueeze(1)


IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1, 1)


class CmacRef(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        v, a = cfg["visual"], cfg["audio"]
        self.visual = VisualEncoder(v["planes"], v.get("blocks", [2, 2, 2, 2]), v["stemMid"], v["lastStride1"])
        self.audio = AudioEncoder(a["planes"], a.get("blocks", [2, 2, 2, 2]))
        self.heads = Heads(v["planes"][3], a["planes"][3], cfg.get("embedDim", 128))
        self.logmel = LogMel(cfg["logmel"])
        self.loss = {**DEFAULT_LOSS, **{k: v for k, v in (cfg.get("loss") or {}).items() if k in DEFAULT_LOSS}}
        self.pooling = cfg.get("pooling", "attention")  # ModelConfig::pooling: attention | mean, independent of the preset

    # cmac_model.cpp prepVideo: uint8 N,T,H,W,3 -> float/255 -> ImageNet norm -> N,3,T,H,W
    @staticmethod
    def prep_video(v):
        x = v.permute(0, 4, 1, 2, 3).to(torch.float32).div_(255.0)
        return ((x - IMAGENET_MEAN.to(x.device)) / IMAGENET_STD.to(x.device)).contiguous()

    def _pool(self, bar, attn, proj, need_local):
        log_alpha = torch.log_softmax(attn(bar), 1)  # B x N
        if self.pooling == "attention":
            feat = torch.bmm(log_alpha.exp().unsqueeze(1), bar).squeeze(1)
        else:
            feat = bar.mean(1)
        z = F.normalize(proj(feat), dim=1)
        local = F.normalize(proj(bar), dim=2) if need_local else None
        return log_alpha, feat, z, local

    def forward(self, video=None, audio=None, need_local=True):
        f = {}
        if video is not None:
            V = self.visual(self.prep_video(video))  # B x C x T' x H' x W'
            f["mapHW"] = (V.shape[3], V.shape[4])
            Vbar = V.mean(2).flatten(2).transpose(1, 2)  # B x N x C
            f["logAlphaV"], f["featV"], f["zV"], f["localV"] = self._pool(Vbar, self.heads.attnV, self.heads.projV, need_local)
        if audio is not None:
            A = self.audio(self.logmel(audio))  # B x C x F' x T'
            Abar = A.mean(3).transpose(1, 2)  # B x M x C
            f["logAlphaA"], f["featA"], f["zA"], f["localA"] = self._pool(Abar, self.heads.attnA, self.heads.projA, need_local)
        return f

    def cmac_state_dict(self):
        """state_dict under cmac's names (torchaudio's window/fb buffers are not in cmac checkpoints)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("logmel.mel.")}

    def load_cmac(self, tensors):
        """Loads a cmac safetensors dict (optim.* / queue.* ignored), strictly: same names and shapes."""
        own = self.cmac_state_dict()
        given = {k: v for k, v in tensors.items() if not (k.startswith("optim.") or k.startswith("queue."))}
        missing = sorted(set(own) - set(given))
        unexpected = sorted(set(given) - set(own))
        if missing or unexpected:
            raise ValueError(f"key mismatch: missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})")
        with torch.no_grad():
            for k, dst in own.items():
                src = given[k]
                if tuple(src.shape) != tuple(dst.shape):
                    raise ValueError(f"{k}: shape {tuple(src.shape)} vs {tuple(dst.shape)}")
                dst.copy_(src.to(dst.dtype))


# --------------------------------------------------------------------------
# Losses: native/core/losses.cpp, line for line.
# --------------------------------------------------------------------------
def _info_nce(anchor, other, tau, within):
    B = anchor.shape[0]
    cross = torch.matmul(anchor, other.t()) / tau
    cols = [cross]
    if within:
        eye = torch.eye(B, dtype=torch.bool, device=anchor.device)
        cols.append((torch.matmul(anchor, anchor.t()) / tau).masked_fill(eye, -math.inf))
    logits = torch.cat(cols, 1)
    return torch.logsumexp(logits, 1) - cross.diagonal()


def contrastive_loss(zV, zA, tau, within):
    return 0.5 * (_info_nce(zV, zA, tau, within).mean() + _info_nce(zA, zV, tau, within).mean())


def guided_target_logits(z, local, tauT):
    return torch.log_softmax(torch.bmm(local, z.unsqueeze(2)).squeeze(2) / tauT, 1)


def attention_consistency_loss(log_target, log_alpha):
    return (log_target.exp() * (log_target - log_alpha)).sum(1).mean()


# --------------------------------------------------------------------------
# The training step of cmac_model.cpp trainStep (accumulate 1, no clipping,
# the gradient norm computed and reported as cmac does).
# --------------------------------------------------------------------------
def make_optimizer(model, cfg):
    o = {**DEFAULT_OPTIM, **(cfg.get("optim") or {})}
    if o["name"] != "adam":
        raise ValueError("the reference implements cmac's default optimiser, adam")
    return torch.optim.Adam(model.parameters(), lr=1e-3, betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                            weight_decay=o["weightDecay"])


def train_step(model, opt, video, audio, lr, lambda_scale=1.0, amp=None):
    """amp: None, or a dtype for CUDA autocast over the encoders and heads
    (losses in float32, as cmac_model.cpp does)."""
    lo = model.loss
    for g in opt.param_groups:
        g["lr"] = lr
    if amp is None:
        f = model(video, audio, need_local=True)  # the projection BN sees local features in every preset
    else:
        with torch.autocast("cuda", dtype=amp):
            f = model(video, audio, need_local=True)  # the projection BN sees local features in every preset
        f = {k: (v.float() if torch.is_tensor(v) else v) for k, v in f.items()}
    loss_con = contrastive_loss(f["zV"], f["zA"], lo["tau"], lo["withinModal"])
    total = loss_con
    r = {"lossV": 0.0, "lossA": 0.0}
    if lo["lossV"]:
        t = guided_target_logits(f["zA"], f["localV"], lo["tauT"])
        lv = attention_consistency_loss(t if lo["targetGrad"] else t.detach(), f["logAlphaV"])
        total = total + lambda_scale * lo["lambdaV"] * lv
        r["lossV"] = lv.item()
    if lo["lossA"]:
        t = guided_target_logits(f["zV"], f["localA"], lo["tauT"])
        la = attention_consistency_loss(t if lo["targetGrad"] else t.detach(), f["logAlphaA"])
        total = total + lambda_scale * lo["lambdaA"] * la
        r["lossA"] = la.item()
    r["loss"] = total.item()
    r["lossCon"] = loss_con.item()
    total.backward()
    with torch.no_grad():
        norms = [p.grad.norm(2) for p in model.parameters() if p.grad is not None]
        r["gradNorm"] = torch.stack(norms).norm(2).item()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return r


@torch.inference_mode()
def evaluate_loss(model, video, audio, lambda_scale=1.0):
    """cmac_model.cpp evaluateLoss: eval mode, every term."""
    was = model.training
    model.eval()
    try:
        lo = model.loss
        f = model(video, audio, need_local=True)
        r = {
            "lossCon": contrastive_loss(f["zV"], f["zA"], lo["tau"], lo["withinModal"]).item(),
            "lossV": attention_consistency_loss(guided_target_logits(f["zA"], f["localV"], lo["tauT"]), f["logAlphaV"]).item(),
            "lossA": attention_consistency_loss(guided_target_logits(f["zV"], f["localA"], lo["tauT"]), f["logAlphaA"]).item(),
        }
        r["loss"] = r["lossCon"] + lambda_scale * ((lo["lambdaV"] * r["lossV"] if lo["lossV"] else 0) +
                                                   (lo["lambdaA"] * r["lossA"] if lo["lossA"] else 0))
        return r
    finally:
        model.train(was)


@torch.inference_mode()
def embed(model, video=None, audio=None):
    was = model.training
    model.eval()
    try:
        f = model(video, audio, need_local=False)
        return {k: f[k] for k in ("zV", "zA", "featV", "featA") if k in f}
    finally:
        model.train(was)


# --------------------------------------------------------------------------
# FLOP counting (convs and linears; x3 for forward + backward).
# --------------------------------------------------------------------------
def count_forward_flops(model, video, audio):
    """Multiply-adds x 2 of every Conv2d/Conv3d/Linear in one forward of the
    training step (the projection runs twice per modality: global + local)."""
    total = {"conv": 0, "linear": 0, "visual": 0, "audio": 0, "heads": 0}
    names = {m: n for n, m in model.named_modules()}
    hooks = []

    def hook(m, inp, out):
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            k = 1
            for s in m.kernel_size:
                k *= s
            fl = 2 * out.numel() * (m.in_channels // m.groups) * k
            total["conv"] += fl
        else:
            fl = 2 * (inp[0].numel() // m.in_features) * m.in_features * m.out_features
            total["linear"] += fl
        total[names[m].split(".")[0]] += fl

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(video, audio, need_local=True)
    finally:
        for h in hooks:
            h.remove()
    total["forward"] = total["conv"] + total["linear"]
    return total


def matmul_gflops(n=2048, reps=5):
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t)
    times.sort()
    med = times[len(times) // 2]
    out = {"n": n, "seconds": times, "gflops": 2 * n ** 3 / med / 1e9, "bestGflops": 2 * n ** 3 / times[0] / 1e9}
    # torch.mm goes to OpenBLAS (generic BLAS build), which may not use the widest vector
    # units of a new CPU; convolutions go to oneDNN. A dense ResNet-like 3x3 convolution is
    # the fastest thing this libtorch does on this CPU, so it is reported as a second yardstick.
    x = torch.randn(8, 256, 28, 28)
    w = torch.randn(256, 256, 3, 3)
    flop = 2 * 8 * 256 * 256 * 9 * 28 * 28
    with torch.inference_mode():
        F.conv2d(x, w, padding=1)
        ct = []
        for _ in range(reps):
            t = time.perf_counter()
            F.conv2d(x, w, padding=1)
            ct.append(time.perf_counter() - t)
    ct.sort()
    out["conv3x3"] = {"shape": "8x256x28x28, 256 3x3 filters, forward", "seconds": ct, "gflops": flop / ct[len(ct) // 2] / 1e9}
    return out


# --------------------------------------------------------------------------
# Decoding with PyAV / torchvision.io (the data benchmark's Python side).
# --------------------------------------------------------------------------
def _resize_frames(frames_thwc, crop, size, flip):
    """uint8 T,H,W,3 -> crop -> bilinear resize to size x size -> flip -> uint8 T,size,size,3."""
    x = frames_thwc
    if crop is not None:
        x0, y0, w, h = (int(round(crop[k])) for k in ("x", "y", "w", "h"))
        x = x[:, y0:y0 + h, x0:x0 + w, :]
    x = x.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if flip:
        x = x.flip(3)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _pick_frames(pts_seconds, start, frames, fps):
    """Index of the frame on screen at start + k / fps, k < frames."""
    out, j = [], 0
    for k in range(frames):
        t = start + k / fps + 1e-6
        while j + 1 < len(pts_seconds) and pts_seconds[j + 1] <= t:
            j += 1
        out.append(j)
    return out


def decode_pyav(job):
    """One clip window with PyAV: seek, decode video frames covering
    [start, start + frames/fps), pick the frame on screen at each slot, crop,
    resize, flip; decode the audio window [audioStart, +samples) as mono
    float at sampleRate (resampled by PyAV's AudioResampler), zero-padded."""
    import av
    import numpy as np
    start, frames, fps, size = job["start"], job["frames"], job["fps"], job["size"]
    with av.open(job["file"]) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO" if job.get("threads", 1) > 1 else "SLICE"
        vs.codec_context.thread_count = job.get("threads", 1)
        tb = float(vs.time_base)
        c.seek(int(max(0.0, start - 0.5) / tb), stream=vs, backward=True, any_frame=False)
        end = start + frames / fps
        pts, imgs = [], []
        for fr in c.decode(vs):
            t = fr.pts * tb
            if t > end:
                break
            if imgs and t <= start - 1.0:
                continue
            pts.append(t)
            imgs.append(fr.to_ndarray(format="rgb24"))
        sel = _pick_frames(pts, start, frames, fps)
        video = torch.from_numpy(np.stack([imgs[i] for i in sel]))
        video = _resize_frames(video, job.get("crop"), size, job.get("flip", False))
        audio = None
        if job.get("audioStart") is not None and c.streams.audio:
            sr, n = job["sampleRate"], job["samples"]
            a0 = job["audioStart"]
            astr = c.streams.audio[0]
            atb = float(astr.time_base)
            # seek 0.1 s early: AAC needs a frame of pre-roll to decode the first samples exactly
            c.seek(int(max(0.0, a0 - 0.1) / atb), stream=astr, backward=True, any_frame=False)
            res = av.AudioResampler(format="flt", layout="mono", rate=sr)
            chunks, first = [], None
            for fr in c.decode(astr):
                for o in res.resample(fr):
                    if first is None:
                        first = o.pts * float(o.time_base) if o.pts is not None else fr.pts * atb
                    chunks.append(o.to_ndarray().reshape(-1))
                if first is not None and sum(len(x) for x in chunks) >= (a0 - first) * sr + n:
                    break
            buf = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
            off = int(round((a0 - (first or 0.0)) * sr))
            audio = np.zeros(n, np.float32)
            lo = max(0, off)
            seg = buf[lo:lo + n - max(0, -off)]
            audio[max(0, -off):max(0, -off) + len(seg)] = seg
            audio = torch.from_numpy(audio)
    return video, audio


def decode_read_video(job):
    """The same window with torchvision.io.read_video (PyAV underneath): it
    returns every frame and the audio of [start, end] in one call."""
    import torchvision.io as tio
    start, frames, fps, size = job["start"], job["frames"], job["fps"], job["size"]
    end = start + frames / fps
    a0 = job.get("audioStart", start)
    lo = min(start, a0)
    hi = max(end, a0 + job["samples"] / job["sampleRate"])
    v, a, info = tio.read_video(job["file"], start_pts=max(0.0, lo - 0.5 / fps), end_pts=hi, pts_unit="sec", output_format="THWC")
    vfps = info.get("video_fps", fps)
    first = max(0.0, lo - 0.5 / fps)
    # read_video returns the frames in [start_pts, end_pts] plus, when no frame sits exactly at
    # start_pts, the one before it (torchvision.io.video._read_from_stream): frame i ~ t0 + i / vfps
    t0 = math.floor(first * vfps + 1e-6) / vfps
    pts = [t0 + i / vfps for i in range(v.shape[0])]
    sel = _pick_frames(pts, start, frames, fps)
    video = _resize_frames(v[sel], job.get("crop"), size, job.get("flip", False))
    sr, n = job["sampleRate"], job["samples"]
    audio = torch.zeros(n)
    if a.numel() > 0:
        mono = a.mean(0)
        asr = info.get("audio_fps", sr)
        if asr != sr:
            mono = torchaudio.functional.resample(mono, int(asr), sr)
        off = int(round((a0 - first) * sr))
        seg = mono[max(0, off):max(0, off) + n - max(0, -off)]
        audio[max(0, -off):max(0, -off) + seg.shape[0]] = seg
    return video, audio


class _ClipDataset(torch.utils.data.Dataset):
    def __init__(self, jobs, method):
        self.jobs, self.method = jobs, method

    def __len__(self):
        return len(self.jobs)

    def __getitem__(self, i):
        fn = decode_pyav if self.method == "pyav" else decode_read_video
        return fn(self.jobs[i])


def _init_worker(_):
    torch.set_num_threads(1)


def decode_bench(jobs, method, workers, batch):
    """clips/s of a torch DataLoader (num_workers decoders, as a PyTorch user
    would run it) over the given clip windows."""
    ds = _ClipDataset(jobs, method)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, shuffle=False,
                                     worker_init_fn=_init_worker, persistent_workers=False)
    t = time.perf_counter()
    n = 0
    shape = None
    for v, a in dl:
        n += v.shape[0]
        shape = list(v.shape)
    sec = time.perf_counter() - t
    return {"clips": n, "seconds": sec, "clipsPerSecond": n / sec, "batchShape": shape}


# --------------------------------------------------------------------------
# The JSON-lines server the bench driver talks to.
# --------------------------------------------------------------------------
class Server:
    def __init__(self):
        self.models = {}

    def handle(self, req):
        cmd = req["cmd"]
        fn = getattr(self, "cmd_" + cmd, None)
        if fn is None:
            raise ValueError(f"unknown command {cmd}")
        return fn(req)

    def cmd_hello(self, req):
        return {"torch": torch.__version__, "torchvision": torchvision.__version__, "torchaudio": torchaudio.__version__,
                "python": sys.version.split()[0], "parallelInfo": torch.__config__.parallel_info(),
                "threads": torch.get_num_threads(), "openblas": os.environ.get("OPENBLAS_NUM_THREADS")}

    def cmd_threads(self, req):
        torch.set_num_threads(int(req["n"]))
        return {"threads": torch.get_num_threads()}

    def _inputs(self, path):
        t, _ = read_safetensors(path)
        return t["video"], t["audio"]

    def cmd_create(self, req):
        torch.manual_seed(int(req.get("seed", 0)))
        cfg = req["config"]
        m = CmacRef(cfg)
        if req.get("weights"):
            m.load_cmac(read_safetensors(req["weights"])[0])
        m.train()
        self.models[req["name"]] = (m, make_optimizer(m, cfg), cfg)
        return {"parameters": sum(p.numel() for p in m.parameters())}

    def cmd_drop(self, req):
        self.models.pop(req["name"], None)
        import gc
        gc.collect()
        return {}

    def cmd_load_inputs(self, req):
        self.inputs = self._inputs(req["path"])
        return {"video": list(self.inputs[0].shape), "audio": list(self.inputs[1].shape)}

    def cmd_eval_loss(self, req):
        m, _, _ = self.models[req["name"]]
        return evaluate_loss(m, *self.inputs, req.get("lambdaScale", 1.0))

    def cmd_step(self, req):
        import resource
        m, opt, _ = self.models[req["name"]]
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        c0 = time.process_time()
        t = time.perf_counter()
        r = train_step(m, opt, *self.inputs, req.get("lr", 1e-3), req.get("lambdaScale", 1.0))
        r["seconds"] = time.perf_counter() - t
        r["cpuSeconds"] = time.process_time() - c0
        r["minorFaults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        return r

    def cmd_step_split(self, req):
        """One step timed in parts: forward+loss, backward, optimiser (profiling)."""
        m, opt, _ = self.models[req["name"]]
        video, audio = self.inputs
        lo = m.loss
        t0 = time.perf_counter()
        f = m(video, audio, need_local=True)
        lc = contrastive_loss(f["zV"], f["zA"], lo["tau"], lo["withinModal"])
        lv = attention_consistency_loss(guided_target_logits(f["zA"], f["localV"], lo["tauT"]).detach(), f["logAlphaV"])
        la = attention_consistency_loss(guided_target_logits(f["zV"], f["localA"], lo["tauT"]).detach(), f["logAlphaA"])
        total = lc + lv + la
        total.item()
        t1 = time.perf_counter()
        total.backward()
        t2 = time.perf_counter()
        with torch.no_grad():
            torch.stack([p.grad.norm(2) for p in m.parameters() if p.grad is not None]).norm(2).item()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        return {"forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2, "seconds": t3 - t0}

    def cmd_profile(self, req):
        """libtorch's profiler over one step: the top ops by self CPU time."""
        m, opt, _ = self.models[req["name"]]
        from torch.profiler import profile, ProfilerActivity
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            train_step(m, opt, *self.inputs, 1e-3, 1.0)
        rows = []
        for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[: int(req.get("top", 15))]:
            rows.append({"op": e.key, "selfMs": e.self_cpu_time_total / 1e3, "calls": e.count})
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e3
        # convolutions that took libtorch's non-oneDNN fallback: which weight shapes
        slow = [{"input": e.input_shapes[0], "weight": e.input_shapes[1], "calls": e.count, "selfMs": e.self_cpu_time_total / 1e3}
                for e in prof.key_averages(group_by_input_shape=True) if e.key == "aten::slow_conv3d_forward" and len(e.input_shapes) > 1]
        return {"rows": rows, "totalSelfMs": total, "slowConv3d": slow}

    def cmd_variants(self, req):
        """Op-sequence choices where cmac's engine differs from the reference, each
        timed both ways in this process (same libtorch, current thread count):
        the log-mel power as cmac writes it (view_as_real(X).pow(2).sum(-1)) vs
        torchaudio's (X.abs().pow(2)), and the reference step with torchvision's
        in-place ReLUs vs out-of-place ones (cmac uses torch::relu, out of place)."""
        cfg = req["config"]
        video, audio = self.inputs
        reps = int(req.get("reps", 5))
        out = {}
        lm = LogMel(cfg["logmel"])
        win = lm.mel.spectrogram.window
        fb = lm.mel.mel_scale.fb
        o = cfg["logmel"]

        def cmac_power(a):
            spec = torch.stft(a, o["nFft"], o["hopLength"], o["winLength"], win, center=True, pad_mode="reflect",
                              normalized=False, onesided=True, return_complex=True)
            power = torch.view_as_real(spec).pow(2).sum(-1)
            return torch.matmul(power.transpose(-1, -2), fb).transpose(-1, -2)

        def timed(fn, n):
            ts = []
            for _ in range(n):
                c0 = time.process_time()
                fn()
                ts.append(time.process_time() - c0)
            ts.sort()
            return ts[len(ts) // 2] * 1000

        with torch.inference_mode():
            cmac_power(audio), lm.mel(audio)
            a = timed(lambda: cmac_power(audio), 2 * reps + 1)
            b = timed(lambda: lm.mel(audio), 2 * reps + 1)
            same = (cmac_power(audio) - lm.mel(audio)).abs().max().item() / lm.mel(audio).abs().max().item()
        out["logmel"] = {"batch": audio.shape[0], "cmacFormulaCpuMs": a, "torchaudioCpuMs": b, "maxRelDiff": same}
        steps = {}
        for inplace in (True, False, True, False):
            torch.manual_seed(0)
            m = CmacRef(cfg)
            if req.get("weights"):
                m.load_cmac(read_safetensors(req["weights"])[0])
            m.train()
            opt = make_optimizer(m, cfg)
            for mod in m.modules():
                if isinstance(mod, nn.ReLU):
                    mod.inplace = inplace
            for _ in range(2):
                train_step(m, opt, video, audio, 1e-3)
            steps.setdefault(inplace, []).append(timed(lambda: train_step(m, opt, video, audio, 1e-3), reps))
            del m, opt
        out["relu"] = {"batch": video.shape[0], "inplaceCpuMs": min(steps[True]), "outOfPlaceCpuMs": min(steps[False]), "runs": {"inplace": steps[True], "outOfPlace": steps[False]}}
        return out

    def cmd_embed(self, req):
        import resource
        m, _, _ = self.models[req["name"]]
        video, audio = self.inputs
        v = video if req.get("video", True) else None
        a = audio if req.get("audio", True) else None
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        c0 = time.process_time()
        t = time.perf_counter()
        embed(m, v, a)
        return {"seconds": time.perf_counter() - t, "cpuSeconds": time.process_time() - c0,
                "minorFaults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0}

    def cmd_state(self, req):
        """Compares the model after a step with cmac's checkpoint after the same step:
        largest weight / BN-buffer difference, the relative L2 difference of the whole
        Adam update (w1 - w0) and of Adam's moments across all parameters."""
        m, opt, _ = self.models[req["name"]]
        ref, _ = read_safetensors(req["path"])
        before = read_safetensors(req["before"])[0] if req.get("before") else None
        params = dict(m.named_parameters())
        out = {"weights": {"value": 0.0, "at": ""}, "buffers": {"value": 0.0, "at": ""}}
        for k, v in m.cmac_state_dict().items():
            if k.endswith("num_batches_tracked") or v.numel() == 0:
                continue
            d = (v.double() - ref[k].double()).abs().max().item()
            slot = out["weights" if k in params else "buffers"]
            if d > slot["value"]:
                slot["value"], slot["at"] = d, k
        acc = {"update": [0.0, 0.0], "exp_avg": [0.0, 0.0], "exp_avg_sq": [0.0, 0.0]}
        for k, p in params.items():
            if before is not None:
                du_ref = ref[k].double() - before[k].double()
                du = p.detach().double() - before[k].double()
                acc["update"][0] += ((du - du_ref) ** 2).sum().item()
                acc["update"][1] += (du_ref ** 2).sum().item()
            st = opt.state.get(p, {})
            for s in ("exp_avg", "exp_avg_sq"):
                key = f"optim.{k}.{s}"
                if s in st and key in ref:
                    acc[s][0] += ((st[s].double() - ref[key].double()) ** 2).sum().item()
                    acc[s][1] += (ref[key].double() ** 2).sum().item()
        for s, (num, den) in acc.items():
            out[s + "RelL2"] = math.sqrt(num / den) if den > 0 else None
        # The optimiser rule alone, free of gradient rounding: torch.optim.Adam applied to
        # cmac's w0 with cmac's own first-step gradient (recovered from its exp_avg) must
        # give cmac's w1.
        if before is not None and int(ref["optim.step"].reshape(-1)[0]) == 1:
            g0 = opt.param_groups[0]
            lr, (b1, b2), eps, wd = float(req["lr"]), g0["betas"], g0["eps"], g0["weight_decay"]
            worst, at, ulps = 0.0, "", 0.0
            for k in params:
                m1 = ref.get(f"optim.{k}.exp_avg")
                if m1 is None:
                    continue
                w0 = before[k].to(torch.float32)
                q = nn.Parameter(w0.clone())
                q.grad = m1 / (1 - b1) - wd * w0  # exp_avg = (1 - b1) (g + wd w0) after one step
                torch.optim.Adam([q], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd).step()
                w1 = ref[k].to(torch.float32)
                d = (q.detach() - w1).abs()
                # one rounding of w0 + update is an ulp of the larger operand (lr as a floor)
                mag = torch.maximum(torch.maximum(w0.abs(), w1.abs()), torch.tensor(lr))
                ulp = torch.nextafter(mag, torch.tensor(math.inf)) - mag
                if d.max().item() > worst:
                    worst, at = d.max().item(), k
                ulps = max(ulps, (d / ulp).max().item())
            out["adamRule"] = {"value": worst, "at": at, "lr": lr, "maxUlps": ulps}
        return {"maxAbsDiff": out}

    def cmd_flops(self, req):
        m, _, _ = self.models[req["name"]]
        return count_forward_flops(m, *self.inputs)

    def cmd_matmul(self, req):
        return matmul_gflops(int(req.get("n", 2048)), int(req.get("reps", 5)))

    def cmd_decode(self, req):
        return decode_bench(req["jobs"], req["method"], int(req.get("workers", 2)), int(req.get("batch", 16)))

    def cmd_decode_one(self, req):
        fn = decode_pyav if req["method"] == "pyav" else decode_read_video
        v, a = fn(req["job"])
        out = {"video": v}
        if a is not None:
            out["audio"] = a
        write_safetensors(req["out"], out)
        return {"video": list(v.shape), "audio": None if a is None else list(a.shape)}

    def cmd_selfcheck(self, req):
        """At the paper widths the visual encoder equals torchvision's r2plus1d_18 (keys and shapes)."""
        mine = VisualEncoder([64, 128, 256, 512], [2, 2, 2, 2], 45, False).state_dict()
        tv = {k: v for k, v in torchvision.models.video.r2plus1d_18().state_dict().items() if not k.startswith("fc.")}
        same_v = set(mine) == set(tv) and all(tuple(mine[k].shape) == tuple(tv[k].shape) for k in tv)
        r18 = torchvision.models.resnet18()
        r18.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        tva = {k: v for k, v in r18.state_dict().items() if not k.startswith("fc.")}
        mya = AudioEncoder([64, 128, 256, 512], [2, 2, 2, 2]).state_dict()
        same_a = set(mya) == set(tva) and all(tuple(mya[k].shape) == tuple(tva[k].shape) for k in tva)
        return {"visualMatchesTorchvision": same_v, "audioMatchesTorchvisionResnet18": same_a}


def serve():
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    srv = Server()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if req.get("cmd") == "quit":
                out.write(json.dumps({"ok": True}) + "\n")
                out.flush()
                break
            res = {"ok": True, **srv.handle(req)}
        except Exception as e:  # report, keep serving
            import traceback
            res = {"ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
        out.write(json.dumps(res) + "\n")
        out.flush()


def selftest():
    torch.set_num_threads(1)
    print(Server().cmd_selfcheck({}))
    for name, (b, frames, size) in {"tiny": (4, 4, 64), "paper": (2, 8, 112)}.items():
        cfg = PRESETS[name]
        m = CmacRef(cfg)
        opt = make_optimizer(m, cfg)
        video = torch.randint(0, 256, (b, frames, size, size, 3), dtype=torch.uint8)
        audio = torch.randn(b, 32000) * 0.1
        t = time.perf_counter()
        r = train_step(m, opt, video, audio, 1e-3)
        print(name, {k: round(v, 4) for k, v in r.items()}, f"{time.perf_counter() - t:.2f} s",
              f"{sum(p.numel() for p in m.parameters())} parameters")


def _vm(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


def memtrain(args):
    """Peak RSS of a short training run (the memory benchmark's PyTorch side)."""
    torch.set_num_threads(args.threads)
    cfg = json.loads(args.config) if args.config else PRESETS[args.preset]
    torch.manual_seed(1)
    m = CmacRef(cfg)
    if args.weights:
        m.load_cmac(read_safetensors(args.weights)[0])
    m.train()
    opt = make_optimizer(m, cfg)
    t, _ = read_safetensors(args.inputs)
    video, audio = t["video"], t["audio"]
    before = _vm("VmRSS")
    for _ in range(args.steps):
        train_step(m, opt, video, audio, 1e-3)
    print(json.dumps({"rssBefore": before, "rssAfter": _vm("VmRSS"), "peak": _vm("VmHWM"), "steps": args.steps}))


def gpustep(a):
    """The GPU half of bench/gpu.js: the same preset, weights and inputs as
    cmac on CUDA; the eval loss on those weights (a parity check), then the
    median wall time of a training step (inputs copied from host memory each
    step, as cmac's trainStep does), model FLOPs and a bf16 matmul yardstick."""
    cfg = json.loads(open(a.config).read())
    dev = torch.device("cuda")
    torch.manual_seed(1)
    m = CmacRef(cfg)
    m.load_cmac(read_safetensors(a.weights)[0])
    m.to(dev).train()
    opt = make_optimizer(m, cfg)
    t, _ = read_safetensors(a.inputs)
    video, audio = t["video"].pin_memory(), t["audio"].pin_memory()
    amp = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[a.amp]
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "amp": a.amp, "batch": int(video.shape[0])}
    out["evalLoss"] = evaluate_loss(m, video.to(dev), audio.to(dev))
    fl = count_forward_flops(m, video.to(dev), audio.to(dev))
    out["forwardFlops"] = fl["forward"]
    times, losses = [], []
    for i in range(a.warmup + a.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        r = train_step(m, opt, video.to(dev, non_blocking=True), audio.to(dev, non_blocking=True), 1e-4, 1.0, amp)
        torch.cuda.synchronize()
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1000)
        losses.append(r["loss"])
    times.sort()
    out["medianMs"] = times[len(times) // 2]
    out["minMs"] = times[0]
    out["firstLoss"], out["lastLoss"] = losses[0], losses[-1]
    out["peakMemMiB"] = torch.cuda.max_memory_allocated() / 2**20
    n = 8192
    x = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    y = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    for _ in range(3):
        x @ y
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        x @ y
    torch.cuda.synchronize()
    out["bf16MatmulTflops"] = 2 * n**3 * 10 / (time.perf_counter() - t0) / 1e12
    print(json.dumps(out))


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["serve", "selftest", "matmul", "memtrain", "gpustep"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--config")
    ap.add_argument("--weights")
    ap.add_argument("--inputs")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off")
    a = ap.parse_args()
    if a.mode == "serve":
        serve()
    elif a.mode == "selftest":
        selftest()
    elif a.mode == "matmul":
        torch.set_num_threads(a.threads)
        r = matmul_gflops(a.n, a.reps)
        r["threads"] = torch.get_num_threads()
        r["openblasThreads"] = os.environ.get("OPENBLAS_NUM_THREADS")
        print(json.dumps(r))
    elif a.mode == "memtrain":
        memtrain(a)
    elif a.mode == "gpustep":
        gpustep(a)
