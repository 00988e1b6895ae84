"""Layer-wise learning-rate decay for the stock transformers classifiers (BEiT, ViT, ResNet, ConvNeXt).

Depth ids: the embeddings (patch embedding, cls token, position embeddings, or a CNN's stem) are 0, transformer block
`i` (or CNN stage `i`) is `i + 1`, everything after the last block (final norm, pooler, classifier head) is
`num_blocks + 1`.
A parameter at depth `d` trains at `decay ** (num_blocks + 1 - d)` times the base learning rate, so the head keeps
the full rate and the patch embedding gets the smallest.
"""

import re
from collections.abc import Callable

from torch import nn

_BLOCK = re.compile(r"(?:^|\.)(?:layers|stages)\.(\d+)\.")
_EMBEDDING = re.compile(r"(?:^|\.)(?:embeddings|embedder)\.")


def num_blocks(model: nn.Module) -> int:
    """Transformer blocks (BEiT/ViT) or stages (ResNet/ConvNeXt) of a stock transformers classifier or encoder."""
    config = model.config
    if config.model_type in ("beit", "vit"):
        return config.num_hidden_layers
    if config.model_type in ("resnet", "convnext"):
        return len(config.depths)
    raise ValueError(
        f"Layer-wise lr decay supports BEiT, ViT, ResNet and ConvNeXt models, not model_type={config.model_type!r}."
    )


def parameter_depth(name: str, blocks: int) -> int:
    """Depth id of parameter `name` (e.g. `beit.layers.3.mlp.fc1.weight` -> 4) in a model of `blocks` blocks."""
    block = _BLOCK.search(name)
    if block is not None:
        return int(block.group(1)) + 1
    if _EMBEDDING.search(name):
        return 0
    return blocks + 1


def layer_decay_multiplier(model: nn.Module, decay: float) -> Callable[[str], float]:
    """`name -> learning-rate multiplier` for the parameters of `model` under layer-wise decay `decay`."""
    if not 0 < decay <= 1:
        raise ValueError(f"--layer_decay={decay} must lie in (0, 1], e.g. 0.65.")
    blocks = num_blocks(model)

    def multiplier(name: str) -> float:
        return decay ** (blocks + 1 - parameter_depth(name, blocks))

    return multiplier
