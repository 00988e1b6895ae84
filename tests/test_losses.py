"""The focal frequency loss against its literal definition (batch-mean of per-image spectra)."""

import pytest
import torch

from modeling_a2mim.losses import FocalFrequencyLoss


def literal_focal_frequency_loss(prediction, target, pixel_mask, unmask_weight):
    """The definition as written in the paper's reference: two per-image FFTs, each averaged over the batch."""
    mix = 0.5 * prediction.detach() + 0.5 * target
    keep = pixel_mask + (1 - pixel_mask) * unmask_weight
    blended = prediction * keep + mix * (1 - keep)
    difference = torch.fft.fft2(blended, norm="ortho").mean(0) - torch.fft.fft2(target, norm="ortho").mean(0)
    distance = difference.abs() ** 2
    weight = torch.log1p(difference.abs()).detach()
    weight = torch.nan_to_num(weight / weight.amax(dim=(-2, -1), keepdim=True), nan=0.0).clamp(0, 1)
    return (weight * distance).mean()


@pytest.mark.parametrize("unmask_weight", [0.0, 1e-3])
def test_frequency_loss_matches_literal_definition_in_value_and_gradient(unmask_weight):
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(4, 3, 16, 16, generator=generator)
    pixel_mask = (torch.rand(4, 1, 16, 16, generator=generator) > 0.4).float()
    prediction = torch.randn(4, 3, 16, 16, generator=generator, requires_grad=True)
    expected_prediction = prediction.detach().clone().requires_grad_(True)

    loss = FocalFrequencyLoss(unmask_weight)(prediction, target, pixel_mask)
    expected = literal_focal_frequency_loss(expected_prediction, target, pixel_mask, unmask_weight)
    loss.backward()
    expected.backward()

    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(prediction.grad, expected_prediction.grad, rtol=1e-4, atol=1e-8)


def test_frequency_loss_is_zero_for_a_perfect_prediction():
    target = torch.randn(2, 3, 8, 8)
    assert FocalFrequencyLoss()(target.clone(), target, torch.ones(2, 1, 8, 8)).item() == 0.0
