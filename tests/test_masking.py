import math

import pytest
import torch

from modeling_a2mim import A2MIMForMaskedImageModeling, BlockMaskGenerator, mean_fill, upsample_mask

from .helpers import tiny_resnet_config, tiny_vit_config


def test_block_mask_has_exact_ceil_count_and_is_seeded():
    generator = BlockMaskGenerator(224, 32, 0.6)
    masks = generator(16, torch.Generator().manual_seed(1))
    assert masks.shape == (16, 7, 7) and masks.dtype == torch.bool
    assert masks.flatten(1).sum(1).tolist() == [math.ceil(49 * 0.6)] * 16 == [30] * 16
    again = generator(16, torch.Generator().manual_seed(1))
    assert torch.equal(masks, again)
    assert not torch.equal(masks[0], masks[1])


def test_block_mask_rejects_bad_geometry():
    with pytest.raises(ValueError, match="multiple of mask_patch_size"):
        BlockMaskGenerator(100, 32, 0.6)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        BlockMaskGenerator(224, 32, 1.0)


def test_upsample_mask_repeats_blocks():
    mask = torch.tensor([[[True, False], [False, True]]])
    pixels = upsample_mask(mask, 2, 4, torch.float32)
    assert pixels.shape == (1, 1, 4, 4)
    assert pixels[0, 0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    assert torch.equal(upsample_mask(mask.flatten(1), 2, 4, torch.float32), pixels)


def test_mean_fill_sets_masked_pixels_to_the_per_image_channel_mean():
    pixels = torch.randn(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1
    filled = mean_fill(pixels, mask)
    means = pixels.mean(dim=(2, 3))
    for b in range(2):
        for c in range(3):
            assert torch.allclose(filled[b, c, :2], means[b, c].expand(2, 4))
            assert torch.equal(filled[b, c, 2:], pixels[b, c, 2:])


@pytest.mark.parametrize("mean_fill_on", [True, False])
def test_model_input_is_mean_filled_and_target_is_clean(mean_fill_on):
    config = tiny_vit_config(mean_fill=mean_fill_on, mask_token_mode="replace")
    model = A2MIMForMaskedImageModeling(config).eval()
    seen = {}
    model.a2mim.register_forward_pre_hook(lambda module, args: seen.setdefault("input", args[0].clone()))
    pixels = torch.randn(2, 3, 32, 32)
    mask = BlockMaskGenerator.from_config(config)(2, torch.Generator().manual_seed(0))
    model(pixels, bool_masked_pos=mask)
    pixel_mask = upsample_mask(mask, 4, 32, torch.float32)
    expected = mean_fill(pixels, pixel_mask) if mean_fill_on else pixels
    assert torch.equal(seen["input"], expected)


def test_residual_mask_token_with_gamma_follows_the_rule():
    """ResNet: x <- x*(1-m) + gamma*x*m, then x <- x + t*m at the input of the mask stage."""
    config = tiny_resnet_config(mask_gamma_init=0.5)
    model = A2MIMForMaskedImageModeling(config).eval().a2mim
    stage = model.encoder.encoder.stages[config.mask_layer]
    seen = {}
    stage.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0].clone()))
    pixels = torch.randn(2, 3, 64, 64)
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[0, 0, 0] = mask[1, 3, 3] = True
    model(pixels, bool_masked_pos=mask)
    masked_input = seen.pop("x")
    model(pixels)
    clean_input = seen["x"]
    m = upsample_mask(mask, 4, 4, torch.float32)  # stride 16 at 64 px -> 4x4 features
    expected = clean_input * (1 - m) + 0.5 * clean_input * m + model.mask_token * m
    assert torch.allclose(masked_input, expected, atol=1e-6)


@pytest.mark.parametrize("mode", ["residual", "replace"])
def test_vit_mask_token_rules_at_a_middle_block(mode):
    config = tiny_vit_config(mask_layer=1, mask_token_mode=mode)
    model = A2MIMForMaskedImageModeling(config).eval().a2mim
    seen = {}
    model.encoder.layers[1].register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0].clone()))
    pixels = torch.randn(1, 3, 32, 32)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 1, 2] = True
    model(pixels, bool_masked_pos=mask)
    masked_input = seen.pop("x")
    model(pixels)
    clean_input = seen["x"]
    token_mask = upsample_mask(mask, 4, 8, torch.float32).flatten(2).transpose(1, 2)  # (1, 64, 1) patches
    patches = clean_input[:, 1:]
    if mode == "residual":
        expected = patches + model.mask_token * token_mask
    else:
        expected = patches * (1 - token_mask) + model.mask_token * token_mask
    assert torch.allclose(masked_input[:, 1:], expected, atol=1e-6)
    assert torch.equal(masked_input[:, :1], clean_input[:, :1])  # cls token untouched
    assert int(token_mask.sum()) == 4  # one 8 px block = 2x2 patches of 4 px
