"""Convert released openmixup A2MIM checkpoints (mmcv `.pth`) to transformers checkpoints.

- Pretraining checkpoints (`backbone.*` with `mask_token` / `mask_gamma`, `neck.decoder_pred.0.*`) become an
  `A2MIMForMaskedImageModeling` checkpoint.
- Fine-tuned checkpoints (`backbone.*` + `head.fc.*`; the ViT with `backbone.fc_norm`) become a stock
  `ResNetForImageClassification` / `BeitForImageClassification` / `ConvNextForImageClassification` checkpoint that
  loads without this package.

Layouts: torchvision-named ResNets (ResNet-50/101/152/200), mmcv BEiT-style ViTs (ViT-S/B/L, DeiT-S) and mmcls
ConvNeXts (ConvNeXt-T/S/B, `MIMConvNeXt`).

Both get a `preprocessor_config.json` (ImageNet mean/std at the model resolution). The conversion is strict: a key
that is neither mapped nor a recomputed buffer, a key the model needs but the file lacks, or a shape mismatch raises
`ValueError` listing the keys. Example:

```bash
python -m modeling_a2mim.convert_openmixup \\
    --checkpoint full_a2mim_r50_l3_sz224_init_8xb256_cos_ep100.pth --output_dir a2mim-resnet-50-ep100
```
"""

import argparse
import copy
import json
import logging
import math
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import AutoModelForImageClassification, PreTrainedModel
from transformers.models.beit.modeling_beit import BeitRelativePositionBias

from .configuration_a2mim import A2MIMConfig
from .modeling_a2mim import A2MIMForMaskedImageModeling, normalizing_image_processor
from .training.cli import run_main
from .training.hub import push_output_dir

logger = logging.getLogger(__name__)

# Buffers the transformers models recompute instead of storing; the converter drops them (after checking them).
RECOMPUTED_BUFFERS = ("relative_position_index", "num_batches_tracked")
BN_TENSORS = "(weight|bias|running_mean|running_var)"


def _stage_layer(match: re.Match, module: str) -> str:
    """`layer{i}.{j}` (torchvision, 1-based stages) -> `encoder.stages.{i-1}.layers.{j}` + `module`."""
    return f"encoder.stages.{int(match[1]) - 1}.layers.{match[2]}.{module}"


# Rules on the key after `backbone.`: (pattern, target). A target is a template for `Match.expand`, a callable of
# the match, or a tuple of templates: the tensor is then split in equal parts along dim 0 (fused qkv -> q, k, v).
RESNET_RULES = [
    (r"conv1\.weight", "embedder.embedder.convolution.weight"),
    (rf"bn1\.{BN_TENSORS}", r"embedder.embedder.normalization.\1"),
    # torchvision bottleneck conv1/conv2/conv3 (basic block conv1/conv2) -> layer.0/1/2
    (r"layer(\d+)\.(\d+)\.conv(\d)\.weight", lambda m: _stage_layer(m, f"layer.{int(m[3]) - 1}.convolution.weight")),
    (
        rf"layer(\d+)\.(\d+)\.bn(\d)\.{BN_TENSORS}",
        lambda m: _stage_layer(m, f"layer.{int(m[3]) - 1}.normalization.{m[4]}"),
    ),
    (r"layer(\d+)\.(\d+)\.downsample\.0\.weight", lambda m: _stage_layer(m, "shortcut.convolution.weight")),
    (rf"layer(\d+)\.(\d+)\.downsample\.1\.{BN_TENSORS}", lambda m: _stage_layer(m, f"shortcut.normalization.{m[3]}")),
]

VIT_RULES = [
    (r"cls_token", "embeddings.cls_token"),
    (r"pos_embed", "embeddings.position_embeddings"),
    (r"patch_embed\.projection\.(weight|bias)", r"embeddings.patch_embeddings.projection.\1"),
    (r"layers\.(\d+)\.ln1\.(weight|bias)", r"layers.\1.layernorm_before.\2"),
    (r"layers\.(\d+)\.ln2\.(weight|bias)", r"layers.\1.layernorm_after.\2"),
    (
        r"layers\.(\d+)\.attn\.qkv\.weight",
        (r"layers.\1.attention.q_proj.weight", r"layers.\1.attention.k_proj.weight", r"layers.\1.attention.v_proj.weight"),
    ),
    (r"layers\.(\d+)\.attn\.q_bias", r"layers.\1.attention.q_proj.bias"),
    (r"layers\.(\d+)\.attn\.v_bias", r"layers.\1.attention.v_proj.bias"),
    (r"layers\.(\d+)\.attn\.proj\.(weight|bias)", r"layers.\1.attention.o_proj.\2"),
    (
        r"layers\.(\d+)\.attn\.relative_position_bias_table",
        r"layers.\1.relative_position_bias.relative_position_bias_table",
    ),
    (r"layers\.(\d+)\.ffn\.layers\.0\.0\.(weight|bias)", r"layers.\1.mlp.fc1.\2"),
    (r"layers\.(\d+)\.ffn\.layers\.1\.(weight|bias)", r"layers.\1.mlp.fc2.\2"),
    (r"layers\.(\d+)\.gamma_([12])", r"layers.\1.lambda_\2"),
    (r"ln1\.(weight|bias)", r"layernorm.\1"),
    (r"fc_norm\.(weight|bias)", r"pooler.layernorm.\1"),
]

# mmcls ConvNeXt: `downsample_layers.0` is the stem (conv, LayerNorm), `downsample_layers.i` (LayerNorm, conv) opens
# stage i; `norm3` is the final norm (applied to the pooled features when fine-tuned, per position in pretraining).
# The mmcls downsampling LayerNorm uses eps 1e-5 where transformers' has 1e-6 (not configurable): differences ~1e-6.
CONVNEXT_RULES = [
    (r"downsample_layers\.0\.0\.(weight|bias)", r"embeddings.patch_embeddings.\1"),
    (r"downsample_layers\.0\.1\.(weight|bias)", r"embeddings.layernorm.\1"),
    (r"downsample_layers\.(\d+)\.([01])\.(weight|bias)", r"encoder.stages.\1.downsampling_layer.\2.\3"),
    (r"stages\.(\d+)\.(\d+)\.depthwise_conv\.(weight|bias)", r"encoder.stages.\1.layers.\2.dwconv.\3"),
    (r"stages\.(\d+)\.(\d+)\.norm\.(weight|bias)", r"encoder.stages.\1.layers.\2.layernorm.\3"),
    (r"stages\.(\d+)\.(\d+)\.pointwise_conv([12])\.(weight|bias)", r"encoder.stages.\1.layers.\2.pwconv\3.\4"),
    (r"stages\.(\d+)\.(\d+)\.gamma", r"encoder.stages.\1.layers.\2.layer_scale_parameter"),
    (r"norm3\.(weight|bias)", r"layernorm.\1"),
]
ENCODER_RULES = {"resnet": RESNET_RULES, "beit": VIT_RULES, "convnext": CONVNEXT_RULES}

# Outside the encoder; `{encoder}` and `{classifier}` are filled per target model.
TOP_LEVEL_RULES = [
    (r"backbone\.mask_token", "a2mim.mask_token"),
    (r"backbone\.mask_gamma", "a2mim.mask_gamma"),
    (r"neck\.decoder_pred\.0\.(weight|bias)", r"decoder.projection.\1"),
    (r"head\.fc\.(weight|bias)", r"{classifier}\1"),
]

# Classifier weights of the stock heads: ResNet's is `Sequential(Flatten, Linear)`.
CLASSIFIER_PREFIX = {"resnet": "classifier.1.", "beit": "classifier.", "convnext": "classifier."}


def _apply_rules(key: str, rules) -> tuple[str, ...] | None:
    for pattern, target in rules:
        match = re.fullmatch(pattern, key)
        if match is None:
            continue
        if callable(target):
            return (target(match),)
        if isinstance(target, tuple):
            return tuple(match.expand(t) for t in target)
        return (match.expand(target),)
    return None


# ----- loading ------------------------------------------------------------------------------------------------------
def load_openmixup_state_dict(path) -> dict[str, torch.Tensor]:
    """Read a `.pth` file with `torch.load(weights_only=True)` and return its flat state dict. A missing, empty,
    truncated or unsafe file is a one-line error naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--checkpoint {path}: no such file.")
    if not path.is_file():
        raise ValueError(f"--checkpoint {path} is not a file; give the openmixup .pth file itself.")
    if path.stat().st_size == 0:
        raise ValueError(f"--checkpoint {path} is empty (0 bytes): the download or copy failed; fetch it again.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, KeyError, UnicodeDecodeError) as error:  # what torch.load says of a broken file
        reason = f"{type(error).__name__}: {' '.join(str(error).split()).split('. ')[0]}"
        raise ValueError(
            f"--checkpoint {path} is not a readable PyTorch checkpoint ({reason}): the file is truncated or is not "
            "a .pth written by torch.save; download it again."
        ) from error
    except pickle.UnpicklingError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        garbage = next((line for line in lines if line.startswith("Unsupported operand")), None)
        if garbage:  # bytes that are no pickle at all
            raise ValueError(f"--checkpoint {path} is not a readable PyTorch checkpoint ({garbage}): the file is "
                             "truncated or is not a .pth written by torch.save; download it again.") from error
        reason = next((line for line in lines if "global" in line), lines[0])
        raise ValueError(
            f"Refusing to load {path}: it contains Python objects other than tensors and plain containers "
            f"({reason}). Unpickling them could run arbitrary code, so only `torch.load(..., weights_only=True)` is "
            "used on downloaded checkpoints. If you trust the file, re-save just its weights and convert that file: "
            "`torch.save(torch.load(path, weights_only=False)['state_dict'], 'weights_only.pth')`."
        ) from error
    return unwrap_state_dict(checkpoint)


def unwrap_state_dict(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """Bare state dict or `{"state_dict": ...}` (mmcv), with or without a `module.` prefix -> flat state dict."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"Expected a state dict or a dict with a 'state_dict' entry, got {type(checkpoint).__name__}.")
    state_dict = checkpoint.get("state_dict", checkpoint)
    not_tensors = sorted(k for k, v in state_dict.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise ValueError(
            f"The state dict has entries that are not tensors: {not_tensors}. Pass a state dict or a dict whose "
            "'state_dict' entry is one."
        )
    if state_dict and all(key.startswith("module.") for key in state_dict):
        state_dict = {key[len("module.") :]: value for key, value in state_dict.items()}
    return dict(state_dict)


def select_weights(state_dict: dict[str, torch.Tensor], use_ema: bool) -> dict[str, torch.Tensor]:
    """Drop the EMA copies (`ema_<name with dots as underscores>`), or put them in place of the weights they track."""
    ema_keys = {key for key in state_dict if key.startswith("ema_")}
    weights = {key: value for key, value in state_dict.items() if key not in ema_keys}
    if not use_ema:
        if ema_keys:
            logger.info("Ignoring %d EMA copies (ema_*); pass use_ema=True (--use_ema) to convert them.", len(ema_keys))
        return weights
    if not ema_keys:
        raise ValueError("use_ema=True, but the checkpoint has no EMA copies (keys starting with 'ema_').")
    tracked = {"ema_" + key.replace(".", "_"): key for key in weights}
    orphans = sorted(ema_keys - tracked.keys())
    if orphans:
        raise ValueError(f"EMA keys that match no weight of the checkpoint: {orphans}.")
    for ema_key in ema_keys:
        weights[tracked[ema_key]] = state_dict[ema_key]
    logger.info("Using the EMA copies of %d tensors (%d tensors have none).", len(ema_keys), len(weights) - len(ema_keys))
    return weights


# ----- architecture -------------------------------------------------------------------------------------------------
def _get(state_dict, key) -> torch.Tensor:
    if key not in state_dict:
        raise ValueError(f"Cannot infer the architecture: the checkpoint has no key {key!r}.")
    return state_dict[key]


def detect_family(state_dict) -> str:
    """`"resnet"` (torchvision names), `"beit"` (mmcv BEiT layout) or `"convnext"` (mmcls), from the stem's key."""
    if "backbone.conv1.weight" in state_dict:
        return "resnet"
    if "backbone.patch_embed.projection.weight" in state_dict:
        return "beit"
    if "backbone.downsample_layers.0.0.weight" in state_dict:
        return "convnext"
    raise ValueError(
        "Not an openmixup A2MIM ResNet, ViT or ConvNeXt checkpoint: none of 'backbone.conv1.weight' (ResNet), "
        "'backbone.patch_embed.projection.weight' (ViT) and 'backbone.downsample_layers.0.0.weight' (ConvNeXt) is "
        f"present. First keys: {sorted(state_dict)[:8]}."
    )


def infer_architecture(state_dict, family: str) -> dict:
    """The backbone config fields the tensors determine, in the form of `describe_backbone`."""
    if family == "resnet":
        stem = _get(state_dict, "backbone.conv1.weight")  # (embedding_size, num_channels, 7, 7)
        blocks = {}
        for key in state_dict:
            match = re.fullmatch(r"backbone\.layer(\d+)\.(\d+)\.conv1\.weight", key)
            if match:
                blocks.setdefault(int(match[1]), set()).add(int(match[2]))
        bottleneck = "backbone.layer1.0.conv3.weight" in state_dict
        last_conv = "conv3" if bottleneck else "conv2"
        stages = sorted(blocks)
        return {
            "model_type": "resnet",
            "layer_type": "bottleneck" if bottleneck else "basic",
            "depths": [len(blocks[stage]) for stage in stages],
            "hidden_sizes": [_get(state_dict, f"backbone.layer{s}.0.{last_conv}.weight").shape[0] for s in stages],
            "embedding_size": stem.shape[0],
            "num_channels": stem.shape[1],
            # torchvision / openmixup ResNets are v1.5: stride on the 3x3 conv, no stride in the first stage.
            "downsample_in_first_stage": False,
            "downsample_in_bottleneck": False,
        }
    if family == "convnext":
        stem = _get(state_dict, "backbone.downsample_layers.0.0.weight")  # (hidden_sizes[0], num_channels, 4, 4)
        blocks = {}
        for key in state_dict:
            match = re.fullmatch(r"backbone\.stages\.(\d+)\.(\d+)\.depthwise_conv\.weight", key)
            if match:
                blocks.setdefault(int(match[1]), set()).add(int(match[2]))
        stages = sorted(blocks)
        return {
            "model_type": "convnext",
            "depths": [len(blocks[stage]) for stage in stages],
            "hidden_sizes": [
                _get(state_dict, f"backbone.stages.{s}.0.depthwise_conv.weight").shape[0] for s in stages
            ],
            "num_channels": stem.shape[1],
        }
    projection = _get(state_dict, "backbone.patch_embed.projection.weight")  # (hidden, num_channels, patch, patch)
    num_patches = _get(state_dict, "backbone.pos_embed").shape[1] - 1  # (1, 1 + num_patches, hidden)
    grid = math.isqrt(num_patches)
    if grid * grid != num_patches:
        raise ValueError(f"backbone.pos_embed has {num_patches} patch positions, which is not a square grid.")
    depth = sum(bool(re.fullmatch(r"backbone\.layers\.\d+\.ln1\.weight", key)) for key in state_dict)
    table = _get(state_dict, "backbone.layers.0.attn.relative_position_bias_table")  # (num_distances, heads)
    return {
        "model_type": "beit",
        "hidden_size": projection.shape[0],
        "num_hidden_layers": depth,
        "num_attention_heads": table.shape[1],
        "intermediate_size": _get(state_dict, "backbone.layers.0.ffn.layers.0.0.weight").shape[0],
        "patch_size": projection.shape[-1],
        "image_size": grid * projection.shape[-1],
        "num_channels": projection.shape[1],
        "use_absolute_position_embeddings": True,
        "use_relative_position_bias": True,
        "use_shared_relative_position_bias": False,
        "layer_scale": "backbone.layers.0.gamma_1" in state_dict,
    }


def describe_backbone(backbone_config) -> dict:
    """The fields of a backbone config that `infer_architecture` reads from a checkpoint."""
    if backbone_config.model_type == "resnet":
        return {
            "model_type": "resnet",
            "layer_type": backbone_config.layer_type,
            "depths": list(backbone_config.depths),
            "hidden_sizes": list(backbone_config.hidden_sizes),
            "embedding_size": backbone_config.embedding_size,
            "num_channels": backbone_config.num_channels,
            "downsample_in_first_stage": backbone_config.downsample_in_first_stage,
            "downsample_in_bottleneck": backbone_config.downsample_in_bottleneck,
        }
    if backbone_config.model_type == "beit":
        patch_size, image_size = backbone_config.patch_size, backbone_config.image_size
        return {
            "model_type": "beit",
            "hidden_size": backbone_config.hidden_size,
            "num_hidden_layers": backbone_config.num_hidden_layers,
            "num_attention_heads": backbone_config.num_attention_heads,
            "intermediate_size": backbone_config.intermediate_size,
            "patch_size": patch_size if isinstance(patch_size, int) else patch_size[0],
            "image_size": image_size if isinstance(image_size, int) else image_size[0],
            "num_channels": backbone_config.num_channels,
            "use_absolute_position_embeddings": backbone_config.use_absolute_position_embeddings,
            "use_relative_position_bias": backbone_config.use_relative_position_bias,
            "use_shared_relative_position_bias": backbone_config.use_shared_relative_position_bias,
            "layer_scale": backbone_config.layer_scale_init_value > 0,
        }
    if backbone_config.model_type == "convnext":
        return {
            "model_type": "convnext",
            "depths": list(backbone_config.depths),
            "hidden_sizes": list(backbone_config.hidden_sizes),
            "num_channels": backbone_config.num_channels,
        }
    return {"model_type": backbone_config.model_type}


def resolve_config(architecture: dict, preset: str | None = None, config: A2MIMConfig | None = None) -> A2MIMConfig:
    """The given config or preset, checked against the checkpoint's `architecture`; else the first matching preset."""
    if preset is not None and config is not None:
        raise ValueError("Pass either preset or config, not both.")
    if preset is not None:
        config, source = A2MIMConfig.from_preset(preset), f"preset {preset!r}"
    elif config is not None:
        source = "the given config"
    else:
        for name in A2MIMConfig.presets():
            candidate = A2MIMConfig.from_preset(name)
            if describe_backbone(candidate.backbone_config) == architecture:
                logger.info("The checkpoint matches preset %r.", name)
                return candidate
        raise ValueError(
            f"No preset matches the checkpoint's architecture {architecture}. Known presets: "
            f"{', '.join(A2MIMConfig.presets())}. Pass config=A2MIMConfig(backbone_config=...) describing it."
        )
    expected = describe_backbone(config.backbone_config)
    differences = [
        f"{key}: checkpoint {architecture[key]!r}, {source} {expected.get(key)!r}"
        for key in architecture
        if expected.get(key) != architecture[key]
    ]
    if differences:
        raise ValueError(f"The checkpoint does not match {source}: " + "; ".join(differences) + ".")
    return copy.deepcopy(config)


# ----- target model -------------------------------------------------------------------------------------------------
def build_target_model(state_dict, config: A2MIMConfig) -> PreTrainedModel:
    """`A2MIMForMaskedImageModeling` for a pretraining checkpoint, the stock classifier for a fine-tuned one."""
    backbone_config = config.backbone_config
    if "head.fc.weight" not in state_dict:
        if backbone_config.model_type == "beit":
            backbone_config.use_mean_pooling = False  # pretraining: final LayerNorm over every token
        return A2MIMForMaskedImageModeling(config)
    classifier_config = copy.deepcopy(backbone_config)
    classifier_config.num_labels = state_dict["head.fc.weight"].shape[0]  # (num_labels, hidden)
    if classifier_config.model_type == "beit":
        classifier_config.use_mean_pooling = True  # fine-tuning: mean-pooled patch tokens + fc_norm
    classifier_config.architectures = None
    return AutoModelForImageClassification.from_config(classifier_config)


def rename_state_dict(state_dict, family: str, encoder_prefix: str) -> tuple[dict, list[str], list[str]]:
    """Map openmixup keys to `model.state_dict()` keys.

    Returns `({target: (source_key, tensor)}, ignored source keys, unknown source keys)`.
    """
    classifier = CLASSIFIER_PREFIX[family]
    top_level = [(pattern, target.format(classifier=classifier)) for pattern, target in TOP_LEVEL_RULES]
    encoder_rules = ENCODER_RULES[family]
    renamed, ignored, unknown = {}, [], []
    for key, tensor in state_dict.items():
        if key.rsplit(".", 1)[-1] in RECOMPUTED_BUFFERS:
            ignored.append(key)
            continue
        targets = _apply_rules(key, top_level)
        if targets is None and key.startswith("backbone."):
            encoder_targets = _apply_rules(key[len("backbone.") :], encoder_rules)
            if encoder_targets is not None:
                targets = tuple(encoder_prefix + target for target in encoder_targets)
        if targets is None:
            unknown.append(key)
            continue
        for target, part in zip(targets, tensor.chunk(len(targets), dim=0)):
            renamed[target] = (key, part)
    return renamed, ignored, unknown


def check_relative_position_indices(state_dict, window: tuple[int, int]) -> None:
    """The dropped `relative_position_index` buffers must equal what `BeitModel` recomputes for `window`."""
    expected = BeitRelativePositionBias.generate_relative_position_index(window)
    wrong = sorted(
        key
        for key, value in state_dict.items()
        if key.endswith("relative_position_index") and not torch.equal(value.long(), expected.long())
    )
    if wrong:
        raise ValueError(
            f"These relative_position_index buffers differ from the BEiT index for a {window[0]}x{window[1]} window "
            f"that transformers recomputes, so their bias tables cannot be reused as they are: {wrong}."
        )


def load_converted_weights(model: PreTrainedModel, state_dict, family: str) -> None:
    """Rename `state_dict` into `model`; raise `ValueError` on unknown, unexpected, missing or mis-shaped keys."""
    is_a2mim = isinstance(model, A2MIMForMaskedImageModeling)
    encoder_prefix = "a2mim.encoder." if is_a2mim else model.base_model_prefix + "."
    renamed, ignored, unknown = rename_state_dict(state_dict, family, encoder_prefix)
    expected = model.state_dict()
    problems = []
    unexpected = unknown + sorted({source for target, (source, _) in renamed.items() if target not in expected})
    if unexpected:
        problems.append(f"unexpected keys (not part of the {type(model).__name__} layout): {unexpected}")
    missing = [k for k in expected if k not in renamed and k.rsplit(".", 1)[-1] not in RECOMPUTED_BUFFERS]
    if missing:
        problems.append(f"missing keys (needed by {type(model).__name__}, absent from the checkpoint): {missing}")
    mismatched = [
        f"{source} {tuple(tensor.shape)} -> {target} {tuple(expected[target].shape)}"
        for target, (source, tensor) in renamed.items()
        if target in expected and tensor.shape != expected[target].shape
    ]
    if mismatched:
        problems.append(f"shape mismatches (checkpoint -> model): {mismatched}")
    if problems:
        raise ValueError("Cannot convert the openmixup checkpoint: " + "; ".join(problems) + ".")
    if family == "beit":
        encoder = describe_backbone(model.config.backbone_config if is_a2mim else model.config)
        grid = encoder["image_size"] // encoder["patch_size"]
        check_relative_position_indices(state_dict, (grid, grid))
    model.load_state_dict({target: tensor for target, (_, tensor) in renamed.items()}, strict=False)
    logger.info(
        "Converted %d tensors; ignored %d recomputed buffers (%s).", len(renamed), len(ignored), ", ".join(RECOMPUTED_BUFFERS)
    )


# ----- entry points -------------------------------------------------------------------------------------------------
def convert_openmixup_checkpoint(
    checkpoint, output_dir=None, preset: str | None = None, config: A2MIMConfig | None = None, use_ema: bool = False
) -> PreTrainedModel:
    """Convert an openmixup A2MIM checkpoint; save it to `output_dir` when given.

    Args:
        checkpoint: path of a `.pth` file, or an already loaded state dict / `{"state_dict": ...}` dict.
        output_dir: where to write the transformers checkpoint (safetensors, config, preprocessor config).
        preset / config: the expected architecture (an `A2MIMConfig` preset name or a config); checked against the
            tensors. With neither, the first preset matching the tensors is used.
        use_ema: convert the `ema_*` copies instead of the raw weights.

    Returns:
        `A2MIMForMaskedImageModeling` (pretraining checkpoint) or a stock `ResNetForImageClassification` /
        `BeitForImageClassification` / `ConvNextForImageClassification` (fine-tuned checkpoint), in eval mode.
    """
    if isinstance(checkpoint, Mapping):
        state_dict = unwrap_state_dict(checkpoint)
    else:
        state_dict = load_openmixup_state_dict(checkpoint)
    state_dict = select_weights(state_dict, use_ema)
    family = detect_family(state_dict)
    config = resolve_config(infer_architecture(state_dict, family), preset=preset, config=config)
    model = build_target_model(state_dict, config)
    load_converted_weights(model, state_dict, family)
    model.eval()
    if output_dir is not None:
        save_converted(model, config.image_size, output_dir)
    return model


def save_converted(model: PreTrainedModel, image_size: int, output_dir) -> None:
    """Write `model` (safetensors) and a `ViTImageProcessor` at `image_size` with ImageNet mean/std to `output_dir`."""
    model.save_pretrained(output_dir)
    normalizing_image_processor(image_size).save_pretrained(output_dir)
    logger.info("Saved %s to %s.", type(model).__name__, output_dir)


def read_config_file(path: Path) -> A2MIMConfig:
    """The `A2MIMConfig` of a JSON file (`--config`); a missing or unreadable file is a one-line error."""
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file.")
    try:
        return A2MIMConfig.from_json_file(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--config {path} is not a readable JSON config ({error}).") from error
    except TypeError as error:  # a JSON value that is not a mapping of config fields
        raise ValueError(f"--config {path} does not describe an A2MIMConfig ({error}).") from error


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="openmixup .pth file")
    parser.add_argument("--output_dir", required=True, type=Path, help="folder for the transformers checkpoint")
    parser.add_argument(
        "--preset", choices=A2MIMConfig.presets(), help="expected architecture (default: inferred from the tensors)"
    )
    parser.add_argument("--config", type=Path, help="A2MIMConfig JSON file for architectures without a preset")
    parser.add_argument("--use_ema", action="store_true", help="convert the ema_* copies instead of the raw weights")
    parser.add_argument("--push_to_hub", metavar="REPO", help="also upload the folder to this Hub repository")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = read_config_file(args.config) if args.config else None
    convert_openmixup_checkpoint(
        args.checkpoint, output_dir=args.output_dir, preset=args.preset, config=config, use_ema=args.use_ema
    )
    if args.push_to_hub:
        push_output_dir(str(args.output_dir), args.push_to_hub, commit_message="Convert openmixup A2MIM checkpoint")


if __name__ == "__main__":
    run_main(main, "convert_openmixup")
