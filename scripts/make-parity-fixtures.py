#!/usr/bin/python3
"""Parity fixtures for native/core: torchvision r2plus1d_18 and resnet18 (with
cmac's audio-stem changes) with random weights and BN statistics, and
torchaudio MelSpectrogram outputs, written as safetensors into OUTDIR.

Run with Debian's /usr/bin/python3 (apt python3-torch, python3-torchvision,
python3-torchaudio; `npm run setup -- --python` installs them).
Usage: make-parity-fixtures.py OUTDIR
"""
import json
import os
import sys

import torch
import torchaudio
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors as save_safetensors  # noqa: E402


def randomise_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def weights(model):
    return {"weights." + k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}


@torch.no_grad()
def r2plus1d(out):
    torch.manual_seed(0)
    m = torchvision.models.video.r2plus1d_18()
    randomise_bn(m)
    m.eval()
    x = torch.randn(1, 3, 8, 112, 112)
    y = m.layer4(m.layer3(m.layer2(m.layer1(m.stem(x)))))
    save_safetensors(os.path.join(out, "r2plus1d.safetensors"), {**weights(m), "input": x, "output": y})


@torch.no_grad()
def resnet18(out):
    torch.manual_seed(0)
    m = torchvision.models.resnet18()
    m.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    for layer in (m.layer3, m.layer4):  # time-only stride (method.md s2)
        layer[0].conv1.stride = (1, 2)
        layer[0].downsample[0].stride = (1, 2)
    randomise_bn(m)
    m.eval()
    x = torch.randn(2, 1, 128, 201)
    y = m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))))
    save_safetensors(os.path.join(out, "resnet18.safetensors"), {**weights(m), "input": x, "output": y})


@torch.no_grad()
def logmel(out):
    torch.manual_seed(0)
    t = torch.arange(32000) / 16000.0
    wave = torch.stack([
        0.5 * torch.sin(2 * torch.pi * 440 * t) + 0.05 * torch.randn(32000),
        0.3 * torch.sin(2 * torch.pi * 3000 * t) * torch.sin(2 * torch.pi * 2 * t),
        0.1 * torch.randn(32000),
    ])
    tensors = {"wave": wave}
    for n_mels in (128, 64):
        tr = torchaudio.transforms.MelSpectrogram(
            sample_rate=16000, n_fft=1024, win_length=400, hop_length=160, f_min=0.0, f_max=8000.0,
            n_mels=n_mels, power=2.0, center=True, pad_mode="reflect", norm=None, mel_scale="htk")
        tensors[f"mel{n_mels}"] = tr(wave)
        tensors[f"fb{n_mels}"] = tr.mel_scale.fb
    save_safetensors(os.path.join(out, "logmel.safetensors"), tensors)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.makedirs(sys.argv[1], exist_ok=True)
    r2plus1d(sys.argv[1])
    resnet18(sys.argv[1])
    logmel(sys.argv[1])
    print(f"fixtures written to {sys.argv[1]} (torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"torchaudio {torchaudio.__version__})")
