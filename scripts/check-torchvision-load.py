#!/usr/bin/python3
"""Loads a cmac checkpoint (paper preset) into torchvision models with
strict=True: visual.* into r2plus1d_18 (fc = Identity) and audio.* into
resnet18 with cmac's audio changes (1-channel stem, layers 3-4 strided in time
only). Prints one JSON line. Usage: check-torchvision-load.py CKPT.safetensors
"""
import json
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors  # noqa: E402


def load_safetensors(path):
    return read_safetensors(path)[0]


def strip(sd, prefix):
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


sd = load_safetensors(sys.argv[1])
video = torchvision.models.video.r2plus1d_18()
video.fc = torch.nn.Identity()
video.load_state_dict(strip(sd, "visual."), strict=True)
audio = torchvision.models.resnet18()
audio.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
for layer in (audio.layer3, audio.layer4):
    layer[0].conv1.stride = (1, 2)
    layer[0].downsample[0].stride = (1, 2)
audio.fc = torch.nn.Identity()
audio.load_state_dict(strip(sd, "audio."), strict=True)
video.eval()
with torch.no_grad():
    feat = video(torch.randn(1, 3, 8, 112, 112))
print(json.dumps({"visual_keys": len(strip(sd, "visual.")), "audio_keys": len(strip(sd, "audio.")), "visual_feature": list(feat.shape)}))
