"""The RDNet family ("DenseNets Reloaded", Kim et al. 2024; timm's layout): config, plan, table, model."""

from __future__ import annotations

from densegui.core.arch import family as F
from densegui.core.arch.fields import shared_fields
from densegui.core.arch.rdnet.config import DEFAULT_PRESET, LIMITS, PRESETS, STEMS, RDNetConfig, preset_of
from densegui.core.arch.rdnet.plan import plan
from densegui.core.arch.rdnet.table import layer_table


def _scale_growth(cfg: RDNetConfig, k: int) -> RDNetConfig:
    """``cfg`` with its first stage's growth rate ``k``: every stage keeps its ratio to the first."""
    scale = k / cfg.growth_rates[0]
    # (no clamping: a value too small is refused by validate() with its reason, not silently changed)
    return cfg.replace(growth_rates=(int(k), *(int(round(g * scale)) for g in cfg.growth_rates[1:])))


FIELDS = (
    F.Field("stage_depths", "stage depths", "depths", "dense blocks per stage, e.g. 3,3,3,3,3,3,3",
            *LIMITS["stage_depth"], flag="stages", metavar="D1,D2,.."),
    F.Field("growth_rates", "growth rates", "ints", "growth rate per stage (channels each block adds)",
            *LIMITS["growth_rate"], metavar="K1,K2,..", log=True, sweep=False),
    F.Field("downsample", "downsample", "ints", "1 where the transition into a stage halves the size (2×2 conv, "
            "stride 2), else 0 (1×1 conv); the first stage's is ignored", 0, 1, metavar="0,1,..", sweep=False),
    F.Field("ese_from", "ESE from stage", "int", "the first stage whose blocks end in effective squeeze-excitation",
            1, 16, sweep=False),
    F.Field("width_ratio", "width ratio", "float", "a block's 1×1 expansion: ⌊C·ratio/8⌋·8 channels (4 in the paper)",
            0.5, 8.0),
    F.Field("compression", "compression θ", "float", "transitions: ⌊θ·C/8⌋·8 channels", 0.1, 1.0),
    F.Field("init_features", "stem channels", "int", "channels out of the patch stem", *LIMITS["init_features"],
            log=True, sweep=False),
    F.Field("patch_size", "patch size", "int", "the stem's patch (kernel and stride)", *LIMITS["patch_size"],
            sweep=False),
    *shared_fields(STEMS, "patch (a patch×patch conv with that stride, then LayerNorm)"),
)

FAMILY = F.Family(
    name="rdnet", title="RDNet", config=RDNetConfig, presets=PRESETS, default_preset=DEFAULT_PRESET,
    fields=FIELDS, plan=plan, table=layer_table, model="densegui.core.arch.rdnet.model:build_model",
    preset_of=preset_of, unit="stage", layer="block", depths="stage_depths",
    kinds=("stem", "depthwise convs", "pointwise convs", "LayerNorm/GELU", "ESE", "concatenation", "transitions",
           "head"),
    profile=(
        (r"stem(\.\d)?", "stem"),
        (r"dense_stages\.\d+\.\d+\.dense_block\d+", "concatenation"),  # torch.cat of a block's inputs, γ
        # a stage's DenseStage (stage 1's sits at .0.0, after no transition): its closing torch.cat
        (r"dense_stages\.0\.0|dense_stages\.[1-9]\d*\.2", "concatenation"),
        (r"dense_stages\.\d+\.\d+\.dense_block\d+\.layers\.layers\.0", "depthwise convs"),
        (r"dense_stages\.\d+\.\d+\.dense_block\d+\.layers\.layers\.[24]", "pointwise convs"),
        (r"dense_stages\.\d+\.\d+\.dense_block\d+\.layers\.layers\.[13]", "LayerNorm/GELU"),
        (r"dense_stages\.\d+\.\d+\.dense_block\d+\.layers\.layers\.5", "ESE"),
        (r"dense_stages\.[1-9]\d*\.[01]", "transitions"),  # LayerNorm, conv
        (r"head", "head"),
    ),
    capabilities=frozenset({F.EXPLORE, F.REUSE, F.WEIGHTS}),
    color="#2ca02c",
    sweeps={"growth": ("first stage's growth rate (the others keep their ratio)", True, _scale_growth,
                       lambda cfg: cfg.growth_rates[0])},
    sweep_axes=(("growth", ""), ("width_ratio", "the blocks' 1×1 expansion ratio"), ("stages", ""),
                ("input_size", "input image side (pixels)")),
    shape_only="densegui.core.arch.rdnet.model:shape_only_ops",
)
