"""Models by name for `--model FAMILY:NAME`, built in the target interpreter from the library installed there.

Runs inside the target (Python 3.8+, torch and the named library only; nothing of qatdoctor), loaded by path by
the probe. No weights are downloaded: every builder asks for random initialisation.

    torchvision:NAME     torchvision.models.get_model(NAME, weights=None)              input 1x3x224x224
    timm:NAME            timm.create_model(NAME, pretrained=False)                      its default_cfg input size
    mmdet:CONFIG         the installed mmdet's configs/**/CONFIG.py, built as mmengine's Runner leaves it on one
                         device (SyncBatchNorm reverted to mmengine's _BatchNormXd, no init_cfg checkpoint), in
                         tensor mode: backbone -> neck -> head outputs as a flat tuple    input 1x3x320x320
    ultralytics:FILE     ultralytics.YOLO(FILE).model for a model YAML (e.g. yolov8n.yaml)  input 1x3x640x640

`build(family, name, input_shape)` returns (module, example_input); an unknown family or name raises
ValueError with what is known, and a missing library ImportError, which the probe reports as the factory failing.
"""

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types

SEED = 0
FAMILIES = ("torchvision", "timm", "mmdet", "ultralytics")
DEFAULT_SHAPES = {"torchvision": (1, 3, 224, 224), "mmdet": (1, 3, 320, 320), "ultralytics": (1, 3, 640, 640)}


def build(family, name, input_shape=None):
    """(module, example_input) for FAMILY:NAME; input_shape (a tuple) overrides the family's default."""
    import torch

    builders = {"torchvision": _torchvision, "timm": _timm, "mmdet": _mmdet, "ultralytics": _ultralytics}
    if family not in builders:
        raise ValueError("unknown model family {!r}; known: {}".format(family, ", ".join(FAMILIES)))
    if not name:
        raise ValueError("{}: a model name is needed, e.g. {}".format(family, _EXAMPLES[family]))
    torch.manual_seed(SEED)
    model, default_shape = builders[family](name)
    shape = tuple(input_shape) if input_shape else default_shape
    generator = torch.Generator().manual_seed(SEED)
    return model, torch.randn(shape, generator=generator)


_EXAMPLES = {"torchvision": "torchvision:resnet18", "timm": "timm:efficientnet_b0",
             "mmdet": "mmdet:rtmdet_tiny_8xb32-300e_coco", "ultralytics": "ultralytics:yolov8n.yaml"}


def _torchvision(name):
    import torchvision

    known = torchvision.models.list_models()
    if name not in known:
        raise ValueError("torchvision {} has no model {!r} (torchvision.models.list_models())".format(
            torchvision.__version__, name))
    return torchvision.models.get_model(name, weights=None), DEFAULT_SHAPES["torchvision"]


def _timm(name):
    import timm

    if not timm.is_model(name):
        raise ValueError("timm {} has no model {!r} (timm.list_models())".format(timm.__version__, name))
    model = timm.create_model(name, pretrained=False)
    size = tuple(getattr(model, "default_cfg", {}).get("input_size") or (3, 224, 224))
    return model, (1, *size)


def _stub_mmcv_ext():
    """mmcv-lite has no compiled `mmcv._ext`, yet `mmdet.models` imports `mmcv.ops`: register a stub whose ops
    raise (backbone, neck and head never call one; NMS runs only in predict())."""
    if "mmcv._ext" in sys.modules or importlib.util.find_spec("mmcv._ext") is not None:
        return

    def missing(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)

        def op(*args, **kwargs):
            raise NotImplementedError("mmcv._ext.{}: this mmcv has no compiled ops".format(attr))

        return op

    ext = types.ModuleType("mmcv._ext")
    ext.__getattr__ = missing
    ext.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", None)
    sys.modules["mmcv._ext"] = ext


def _mmdet_config(mmdet, name):
    root = os.path.join(os.path.dirname(mmdet.__file__), ".mim", "configs")
    wanted = name if name.endswith(".py") else name + ".py"
    for folder, _, files in sorted(os.walk(root)):
        if wanted in files:
            return os.path.join(folder, wanted)
    raise ValueError("mmdet {} ships no config {} (under {})".format(mmdet.__version__, wanted, root))


def _mmdet(name):
    _stub_mmcv_ext()
    import mmdet
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm

    register_all_modules()
    cfg = Config.fromfile(_mmdet_config(mmdet, name))
    backbone = cfg.model.get("backbone")
    if backbone is not None and "init_cfg" in backbone:
        backbone.init_cfg = None  # a Pretrained checkpoint URL otherwise
    detector = revert_sync_batchnorm(MODELS.build(cfg.model))

    class Features(torch.nn.Module):
        """The detector in tensor mode (`_forward`: backbone, neck, head), its outputs as one flat tuple."""

        def __init__(self, detector):
            super().__init__()
            self.detector = detector

        def forward(self, x):
            return tuple(_flatten(self.detector._forward(x)))

    Features.__name__ = Features.__qualname__ = type(detector).__name__ + "Features"
    return Features(detector), DEFAULT_SHAPES["mmdet"]


def _flatten(value):
    if isinstance(value, (tuple, list)):
        for item in value:
            yield from _flatten(item)
    elif value is not None:
        yield value


def _ultralytics(name):
    from ultralytics import YOLO

    if not name.endswith((".yaml", ".yml")):
        raise ValueError("ultralytics: name a model YAML such as yolov8n.yaml (a .pt name would download weights)")
    return YOLO(name).model, DEFAULT_SHAPES["ultralytics"]
