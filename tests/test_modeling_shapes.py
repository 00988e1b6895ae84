import pytest
import torch

from modeling_a2mim import A2MIMForImageClassification, A2MIMForMaskedImageModeling, A2MIMModel

from .test_modeling import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_backward_shapes(family):
    config = FAMILIES[family]()
    size = config.image_size
    pixel_values = torch.randn(2, 3, size, size)
    model = A2MIMForMaskedImageModeling(config)
    out = model(pixel_values)
    out.loss.backward()
    assert out.reconstruction.shape == (2, 3, size, size)
    assert out.bool_masked_pos.shape == (2, config.mask_grid_size, config.mask_grid_size)
    assert torch.isfinite(out.loss) and out.spatial_loss.ndim == 0 and out.frequency_loss.ndim == 0
    assert model.a2mim.mask_token.grad is not None and model.a2mim.mask_token.grad.abs().sum() > 0

    base = A2MIMModel(config)(pixel_values, output_hidden_states=True)
    stride = config.encoder_stride
    assert base.last_hidden_state.shape == (2, config.encoder_hidden_size, size // stride, size // stride)
    assert base.pooler_output.shape == (2, config.encoder_hidden_size)
    assert len(base.hidden_states) == config.num_mask_layers + 1

    config.num_labels = 5
    classifier = A2MIMForImageClassification(config)
    logits_out = classifier(pixel_values, labels=torch.tensor([0, 4]))
    assert logits_out.logits.shape == (2, 5)
    assert logits_out.loss.ndim == 0
