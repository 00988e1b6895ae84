"""Each loss term against a direct computation written independently of the implementation."""

import math

import numpy as np
import pytest
import torch

from modeling_a2mim import FocalFrequencyLoss, SpatialReconstructionLoss


def _example():
    generator = torch.Generator().manual_seed(3)
    prediction = torch.randn(2, 3, 4, 4, generator=generator)
    target = torch.randn(2, 3, 4, 4, generator=generator)
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, :2, :2] = 1
    mask[1, :, 2:, :] = 1
    return prediction, target, mask


def test_l1_is_mean_abs_error_over_masked_pixels_only():
    prediction, target, mask = _example()
    loss = SpatialReconstructionLoss("l1")(prediction, target, mask)
    masked = mask.expand_as(prediction).bool()
    expected = (prediction - target).abs()[masked].mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_unmasked_pixels_do_not_move_the_spatial_loss():
    prediction, target, mask = _example()
    loss = SpatialReconstructionLoss("focal_l1")
    changed = prediction + 100 * (1 - mask)
    assert loss(changed, target, mask).item() == pytest.approx(loss(prediction, target, mask).item(), rel=1e-6)
    weighted = SpatialReconstructionLoss("l1", unmask_weight=0.5)
    assert weighted(changed, target, mask) > weighted(prediction, target, mask)


def test_focal_l1_matches_its_formula():
    prediction, target, mask = _example()
    loss = SpatialReconstructionLoss("focal_l1", alpha=0.2, gamma=1.0)(prediction, target, mask)
    p, t, m = prediction.numpy(), target.numpy(), mask.numpy()
    total, count = 0.0, 0
    for b, c, h, w in np.ndindex(*p.shape):
        if m[b, 0, h, w]:
            d = abs(p[b, c, h, w] - t[b, c, h, w])
            total += d * (2 / (1 + math.exp(-0.2 * d)) - 1)
            count += 1
    assert loss.item() == pytest.approx(total / count, rel=1e-5)


def _reference_frequency_loss(p, t, m, w_u):
    """Direct numpy version: blend, batch-mean spectrum per channel, log weight over its single maximum."""
    mix = 0.5 * p + 0.5 * t
    keep = m + (1 - m) * w_u
    blended = p * keep + mix * (1 - keep)
    spectrum_b = np.fft.fft2(blended, norm="ortho").mean(axis=0)
    spectrum_t = np.fft.fft2(t, norm="ortho").mean(axis=0)
    distance = np.abs(spectrum_b - spectrum_t)
    weight = np.log(1 + distance)
    weight = weight / weight.max()
    return float((weight * distance**2).mean())


@pytest.mark.parametrize("w_u", [0.0, 1e-3])
def test_frequency_loss_matches_a_direct_numpy_computation(w_u):
    prediction, target, mask = _example()
    loss = FocalFrequencyLoss(unmask_weight=w_u)(prediction, target, mask)
    expected = _reference_frequency_loss(prediction.double().numpy(), target.double().numpy(), mask.numpy(), w_u)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_frequency_loss_uses_the_batch_averaged_spectrum():
    """Two errors that cancel in the batch mean give zero loss; a per-sample loss would not."""
    target = torch.zeros(2, 1, 4, 4)
    error = torch.randn(1, 1, 4, 4)
    prediction = torch.cat([error, -error])
    mask = torch.ones(2, 1, 4, 4)
    assert FocalFrequencyLoss()(prediction, target, mask).item() == pytest.approx(0.0, abs=1e-12)


def test_frequency_weight_is_detached_and_gradient_flows_through_masked_prediction_only():
    prediction, target, mask = _example()
    prediction.requires_grad_(True)
    FocalFrequencyLoss()(prediction, target, mask).backward()
    grad = prediction.grad
    assert grad[(mask.expand_as(grad) == 0)].abs().max() == 0
    assert grad[(mask.expand_as(grad) == 1)].abs().max() > 0


def test_frequency_loss_is_float32_under_bf16_autocast():
    prediction, target, mask = _example()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = FocalFrequencyLoss()(prediction.bfloat16(), target.bfloat16(), mask)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def _two_fft_frequency_loss(prediction, target, pixel_mask, unmask_weight):
    """The reference's literal form in torch: two per-image FFTs, each averaged over the batch."""
    mix = 0.5 * prediction.detach() + 0.5 * target
    keep = pixel_mask + (1 - pixel_mask) * unmask_weight
    blended = prediction * keep + mix * (1 - keep)
    difference = torch.fft.fft2(blended, norm="ortho").mean(0) - torch.fft.fft2(target, norm="ortho").mean(0)
    weight = torch.log1p(difference.abs()).detach()
    weight = torch.nan_to_num(weight / weight.amax(), nan=0.0).clamp(0, 1)
    return (weight * difference.abs() ** 2).mean()


@pytest.mark.parametrize("unmask_weight", [0.0, 1e-3])
def test_single_fft_of_the_mean_difference_has_the_two_fft_value_and_gradient(unmask_weight):
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(4, 3, 16, 16, generator=generator)
    pixel_mask = (torch.rand(4, 1, 16, 16, generator=generator) > 0.4).float()
    prediction = torch.randn(4, 3, 16, 16, generator=generator, requires_grad=True)
    reference_prediction = prediction.detach().clone().requires_grad_(True)
    loss = FocalFrequencyLoss(unmask_weight)(prediction, target, pixel_mask)
    expected = _two_fft_frequency_loss(reference_prediction, target, pixel_mask, unmask_weight)
    loss.backward()
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(prediction.grad, reference_prediction.grad, rtol=1e-4, atol=1e-8)


def test_frequency_loss_is_zero_for_a_perfect_prediction():
    target = torch.randn(2, 3, 8, 8)
    assert FocalFrequencyLoss()(target.clone(), target, torch.ones(2, 1, 8, 8)).item() == 0.0


def test_focal_weight_divides_by_one_maximum_over_all_channels():
    """openmixup's head builds the loss with `batch_matrix=True`: one maximum over channels and frequencies.

    Hand-made example: channel 0 has a spectrum difference of 1 at DC only, channel 1 of 3 at DC only (a constant
    image error of 1/4 resp. 3/4 on a 4x4 grid, orthonormal FFT). Single maximum: w = log 2 / log 4 on channel 0 and
    1 on channel 1, loss = (log 2 / log 4 * 1 + 9) / 32. A per-channel maximum would give (1 + 9) / 32.
    """
    target = torch.zeros(1, 2, 4, 4)
    prediction = torch.cat([torch.full((1, 1, 4, 4), 0.25), torch.full((1, 1, 4, 4), 0.75)], dim=1)
    mask = torch.ones(1, 1, 4, 4)
    loss = FocalFrequencyLoss()(prediction, target, mask).item()
    assert loss == pytest.approx((math.log(2) / math.log(4) + 9) / 32, rel=1e-6)
    assert loss != pytest.approx(10 / 32, rel=1e-3)
