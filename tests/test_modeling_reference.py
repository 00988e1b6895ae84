"""The stock-encoder forward with hooks reproduces the loss and reconstruction of the original A2MIM forward.

`tests/data/forward_reference.safetensors` holds, for each case below, the weights, the inputs and the outputs that
the hand-written forward (`_forward_vit` / `_forward_resnet`, commit 1c88f79) produced. Regenerate it only on purpose:
`python -m tests.test_modeling_reference`.
"""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from modeling_a2mim import A2MIMConfig, A2MIMForMaskedImageModeling, BlockMaskGenerator

from .helpers import tiny_resnet_config, tiny_vit_config

REFERENCE = Path(__file__).parent / "data" / "forward_reference.safetensors"

_SMALL_RESNET = {"embedding_size": 4, "hidden_sizes": [4, 4, 8, 8]}  # keeps the reference file small

CASES = {
    "beit_layer0": lambda: tiny_vit_config(),
    "beit_layer1_gamma": lambda: tiny_vit_config(mask_layer=1, mask_gamma_init=0.5),
    "vit_layer1_replace": lambda: A2MIMConfig(
        backbone_config={"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "intermediate_size": 64, "patch_size": 4, "image_size": 32},
        mask_patch_size=8, mask_layer=1, mask_token_mode="replace",
    ),
    "resnet_layer3_gamma": lambda: tiny_resnet_config(backbone=_SMALL_RESNET, mask_gamma_init=0.5),
    "resnet_layer1_replace": lambda: tiny_resnet_config(
        backbone=_SMALL_RESNET, mask_layer=1, mask_token_mode="replace", mask_gamma_init=None
    ),
}


def _inputs(config: A2MIMConfig) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(2, 3, config.image_size, config.image_size, generator=generator)
    return pixels, BlockMaskGenerator.from_config(config)(2, generator)


def _outputs(model: A2MIMForMaskedImageModeling, pixels, mask) -> dict[str, torch.Tensor]:
    out = model.train()(pixels, bool_masked_pos=mask)
    return {"loss": out.loss.detach(), "reconstruction": out.reconstruction.detach()}


def _record() -> None:
    tensors = {}
    for name, make_config in CASES.items():
        torch.manual_seed(0)
        model = A2MIMForMaskedImageModeling(make_config())
        pixels, mask = _inputs(model.config)
        tensors.update({f"{name}.state.{k}": v.clone().contiguous() for k, v in model.state_dict().items()})
        tensors.update({f"{name}.out.{k}": v.contiguous() for k, v in _outputs(model, pixels, mask).items()})
    save_file(tensors, REFERENCE)


@pytest.mark.parametrize("case", CASES)
def test_loss_and_reconstruction_equal_the_original_forward(case):
    reference = load_file(REFERENCE)
    model = A2MIMForMaskedImageModeling(CASES[case]())
    prefix = f"{case}.state."
    model.load_state_dict({k[len(prefix):]: v for k, v in reference.items() if k.startswith(prefix)}, strict=True)
    pixels, mask = _inputs(model.config)
    with torch.no_grad():
        outputs = _outputs(model, pixels, mask)
    torch.testing.assert_close(outputs["reconstruction"], reference[f"{case}.out.reconstruction"], rtol=0, atol=1e-6)
    torch.testing.assert_close(outputs["loss"], reference[f"{case}.out.loss"], rtol=0, atol=1e-6)


if __name__ == "__main__":
    _record()
