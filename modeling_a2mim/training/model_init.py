"""Building the model a script trains: a preset, a saved A2MIM checkpoint, or a stock encoder checkpoint."""

import copy
import json
import logging

from huggingface_hub.errors import StrictDataclassError
from transformers import AutoModel

from ..configuration_a2mim import SUPPORTED_BACKBONES, A2MIMConfig
from ..finetuning.transforms import image_processor_size
from ..modeling_a2mim import A2MIMForMaskedImageModeling
from ..presets import PRESETS
from ..transfer import saved_image_processor
from .model_sources import load_model_config, reading_checkpoint

logger = logging.getLogger(__name__)

# The A2MIM fields of a family's preset, used when the encoder comes from a stock checkpoint of no preset's shape.
FAMILY_PRESET = {"beit": "vit-base", "vit": "vit-base", "resnet": "resnet-50", "convnext": "convnext-tiny"}
# Encoder config fields that make a stock encoder "the architecture of a preset".
ARCHITECTURE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size",
                       "depths", "hidden_sizes", "embedding_size", "layer_type")


def parse_config_overrides(text: str | None) -> dict:
    """`"mask_ratio=0.5,image_size=64,backbone_config.drop_path_rate=0.1"` -> dict; values parsed as JSON when they
    can be (numbers, true/false/null, lists), else kept as strings."""
    overrides = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--config_overrides item {item!r} is not key=value (e.g. 'mask_ratio=0.5').")
        try:
            overrides[key.strip()] = json.loads(value.strip())
        except json.JSONDecodeError:
            overrides[key.strip()] = value.strip()
    return overrides


def config_with_overrides(config_dict: dict, overrides: dict) -> A2MIMConfig:
    """An `A2MIMConfig` from a config dict with `overrides` applied; `backbone_config.X` keys reach the encoder.
    Unknown keys are a `ValueError` listing the valid ones."""
    config_dict = copy.deepcopy(config_dict)
    valid = set(A2MIMConfig.__dataclass_fields__) - {"backbone_config"}
    for key, value in overrides.items():
        if key.startswith("backbone_config."):
            config_dict["backbone_config"][key.split(".", 1)[1]] = value
        elif key in valid:
            config_dict[key] = value
        else:
            raise ValueError(
                f"--config_overrides key {key!r} is not an A2MIMConfig field. Valid: {', '.join(sorted(valid))}, "
                "or backbone_config.<encoder field>."
            )
    if "image_size" in overrides and config_dict["backbone_config"].get("model_type") in ("beit", "vit"):
        config_dict["backbone_config"]["image_size"] = overrides["image_size"]
    try:
        return A2MIMConfig(**config_dict)
    except StrictDataclassError as error:  # the stock encoder config's own type check, e.g. hidden_size='abc'
        raise ValueError(f"--config_overrides: {' '.join(str(error).split())}") from error


def build_pretraining_model(
    model_preset: str | None = None,
    model_name_or_path: str | None = None,
    config_overrides: str | None = None,
    **from_pretrained_kwargs,
) -> tuple[A2MIMForMaskedImageModeling, str]:
    """`(model, description)`: a randomly initialized preset, a saved A2MIM checkpoint, or a stock `BeitModel` /
    `ViTModel` / `ResNetModel` checkpoint whose weights initialize the encoder (the A2MIM fields then come from the
    family's seed preset, `model_preset` if given). `from_pretrained_kwargs` (cache_dir, token, revision) go to the
    Hub/disk loaders."""
    overrides = parse_config_overrides(config_overrides)
    if model_name_or_path is None:
        preset = model_preset or "vit-micro"
        if preset not in PRESETS:
            raise ValueError(f"Unknown --model_preset {preset!r}. Known presets: {', '.join(PRESETS)}.")
        config = config_with_overrides(PRESETS[preset], overrides)
        return A2MIMForMaskedImageModeling(config), f"preset {preset} (random init)"

    source_config = load_model_config(model_name_or_path, **from_pretrained_kwargs)
    if source_config.model_type == A2MIMConfig.model_type:
        backbone = source_config.backbone_config
        changed = {key: value for key, value in overrides.items() if key.startswith("backbone_config.") and
                   key.split(".", 1)[1] in ARCHITECTURE_FIELDS and getattr(backbone, key.split(".", 1)[1]) != value}
        if changed:
            key, value = next(iter(changed.items()))
            raise ValueError(
                f"--config_overrides {key}={value} changes the architecture of the checkpoint {model_name_or_path} "
                f"(its weights have {key.split('.', 1)[1]}={getattr(backbone, key.split('.', 1)[1])!r}); drop it, or "
                "start a new architecture from --model_preset."
            )
        config = config_with_overrides(source_config.to_dict(), overrides)
        with reading_checkpoint(model_name_or_path):
            model = A2MIMForMaskedImageModeling.from_pretrained(model_name_or_path, config=config,
                                                                **from_pretrained_kwargs)
        return model, f"A2MIM checkpoint {model_name_or_path}"
    if source_config.model_type not in SUPPORTED_BACKBONES:
        raise ValueError(
            f"--model_name_or_path {model_name_or_path} is a {source_config.model_type!r} model; A2MIM starts from an "
            f"A2MIM checkpoint or a stock encoder of type {', '.join(SUPPORTED_BACKBONES)}."
        )
    backbone = source_config.to_dict()
    backbone["architectures"] = None
    if backbone["model_type"] == "beit":
        backbone["use_mean_pooling"] = False  # pretraining form: final LayerNorm over all tokens
    preset, why = preset_for_encoder(backbone, model_preset)
    size, size_source = checkpoint_image_size(model_name_or_path, backbone, **from_pretrained_kwargs)
    config_dict = {**copy.deepcopy(PRESETS[preset]), "backbone_config": backbone, "preset": preset}
    config_dict["image_size"] = size or config_dict["image_size"]
    model = A2MIMForMaskedImageModeling(config_with_overrides(config_dict, overrides))
    load_encoder_weights(model, model_name_or_path, **from_pretrained_kwargs)
    where = size_source if size else "the preset's size: the checkpoint names none"
    description = (f"encoder from {model_name_or_path} ({source_config.model_type}) with the A2MIM settings and "
                   f"recipe of preset {preset} ({why}) at {model.config.image_size} px ({where})")
    # A preset the user did not name decides the mask, loss and recipe: say so where a default log level shows it.
    (logger.info if model_preset else logger.warning)("Continued pretraining of the %s", description)
    return model, description


def preset_for_encoder(backbone: dict, model_preset: str | None = None) -> tuple[str, str]:
    """`(preset, why)`: the preset whose A2MIM settings and recipe a stock encoder gets: `model_preset`, else the
    first preset with the encoder's architecture (`ARCHITECTURE_FIELDS`), else its family's seed preset."""
    if model_preset is not None:
        if model_preset not in PRESETS:
            raise ValueError(f"Unknown --model_preset {model_preset!r}. Known presets: {', '.join(PRESETS)}.")
        return model_preset, "named by --model_preset"
    for name, preset in PRESETS.items():
        candidate = preset["backbone_config"]
        fields = [field for field in ARCHITECTURE_FIELDS if field in candidate]
        if candidate["model_type"] == backbone["model_type"] and all(
                candidate[field] == backbone.get(field) for field in fields):
            return name, "the encoder has its architecture"
    family = FAMILY_PRESET[backbone["model_type"]]
    return family, "no preset has the encoder's architecture: the family's seed preset"


def checkpoint_image_size(model_name_or_path: str, backbone: dict, **kwargs) -> tuple[int | None, str]:
    """`(size, where it came from)`: a ViT's position embeddings fix its size (`config.json`); otherwise the saved
    image processor's size (`preprocessor_config.json`); `(None, "")` when neither says."""
    if backbone["model_type"] in ("beit", "vit"):
        size = backbone["image_size"]
        return (size if isinstance(size, int) else size[0]), "config.json"
    image_processor = saved_image_processor(model_name_or_path, **kwargs)
    if image_processor is None:
        return None, ""
    size = image_processor_size(image_processor)
    return size, ("preprocessor_config.json" if size else "")


def load_encoder_weights(model: A2MIMForMaskedImageModeling, model_name_or_path: str, **kwargs) -> None:
    """Copy a stock encoder checkpoint's weights into `model.a2mim.encoder`. A BEiT `pooler.layernorm` (fine-tuning
    form) becomes the final `layernorm`; ViT poolers are dropped. Any other missing or unexpected key is an error."""
    with reading_checkpoint(model_name_or_path):
        encoder = AutoModel.from_pretrained(model_name_or_path, **kwargs)
    state_dict = encoder.state_dict()
    for name in ("weight", "bias"):
        if f"pooler.layernorm.{name}" in state_dict:
            state_dict[f"layernorm.{name}"] = state_dict.pop(f"pooler.layernorm.{name}")
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith("pooler.")}
    result = model.a2mim.encoder.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if "relative_position_index" not in k]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"The encoder of {model_name_or_path} does not match the A2MIM encoder: missing {missing}, unexpected "
            f"{result.unexpected_keys}."
        )
    logger.info("Initialized the encoder from %s (%d tensors).", model_name_or_path, len(state_dict))
