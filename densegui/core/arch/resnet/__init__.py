"""The ResNet family (He et al. 2016; torchvision's layout), the comparison: config, plan, table, model."""

from __future__ import annotations

from densegui.core.arch import family as F
from densegui.core.arch.fields import shared_fields
from densegui.core.arch.resnet.config import BLOCKS, PRESETS, RESNET_LIMITS, SHORTCUTS, STEMS, ResNetConfig, preset_of
from densegui.core.arch.resnet.plan import plan
from densegui.core.arch.resnet.table import resnet_layer_table


def _scale_widths(cfg: ResNetConfig, width: int) -> ResNetConfig:
    """``cfg`` with its first stage ``width`` wide: every stage keeps its ratio to the first
    (torchvision: 64, 128, 256, 512) and the stem follows."""
    scale = width / cfg.widths[0]
    return cfg.replace(widths=tuple(int(round(w * scale)) for w in cfg.widths),
                       stem_width=int(round(cfg.stem_width * scale)))


FIELDS = (
    F.Field("stage_depths", "stage depths", "depths", "residual blocks per stage, e.g. 3,4,6,3",
            *RESNET_LIMITS["stage_depth"], flag="stages", metavar="D1,D2,.."),
    F.Field("widths", "widths", "ints", "base width per stage (a bottleneck stage outputs 4×), e.g. 64,128,256,512",
            *RESNET_LIMITS["width"], metavar="W1,W2,..", log=True, sweep=False),
    F.Field("block", "block", "choice", "basic (two 3×3 convs) or bottleneck (1×1, 3×3, 1×1; expansion 4)",
            choices=BLOCKS, sweep=False),
    F.Field("shortcut", "shortcut", "choice",
            "where the shape changes: B = 1×1 conv + BN projection, A = zero-padded identity", choices=SHORTCUTS,
            sweep=False),
    F.Field("stem_width", "stem width", "int", "channels out of the stem (torchvision: 64)",
            *RESNET_LIMITS["stem_width"], log=True, sweep=False),
    *shared_fields(STEMS, "imagenet (7×7/2 conv + max pool) or cifar (3×3 conv)"),
)

FAMILY = F.Family(
    name="resnet", title="ResNet", config=ResNetConfig, presets=PRESETS, default_preset="resnet50",
    fields=FIELDS, plan=plan, table=resnet_layer_table, model="densegui.core.arch.resnet.model:build_model",
    preset_of=preset_of, unit="stage", layer="block", depths="stage_depths",
    kinds=("stem", "residual convs", "residual BN/ReLU", "shortcuts", "head"),
    profile=(
        (r"conv1|bn1|relu|maxpool", "stem"),
        (r"avgpool|fc", "head"),
        (r"layer\d+\.\d+(\.downsample)?", "shortcuts"),  # the residual add; B's conv + BN or A's slice and pad
        (r"layer\d+\.\d+\.conv\d", "residual convs"),
        (r"layer\d+\.\d+\.(bn\d|relu)", "residual BN/ReLU"),
    ),
    capabilities=frozenset({F.EXPLORE}),  # (densegui loads no ResNet checkpoints)
    color="#d62728",
    sweeps={"width": ("first stage's width (the others keep their ratio)", True, _scale_widths,
                       lambda cfg: cfg.widths[0])},
    sweep_axes=(("width", ""), ("stages", ""), ("input_size", "input image side (pixels)"), ("num_classes", "")),
    shape_only="densegui.core.arch.resnet.model:shape_only_ops",
)
