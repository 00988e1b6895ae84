import pytest
import torch
import torch.nn.functional as F

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


def test_classifier_loss_takes_trainers_num_items_in_batch():
    """Trainer passes `num_items_in_batch` to a forward with `**kwargs` and then does not divide the loss by the
    accumulation steps: the loss must be the sum over the micro-batch divided by that count, as in stock classifiers."""
    config = FAMILIES["vit"]()
    config.num_labels = 3
    classifier = A2MIMForImageClassification(config).eval()
    pixel_values, labels = torch.randn(2, 3, config.image_size, config.image_size), torch.tensor([0, 2])
    logits = classifier(pixel_values).logits
    loss = classifier(pixel_values, labels=labels, num_items_in_batch=8).loss
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels, reduction="sum") / 8)
    torch.testing.assert_close(classifier(pixel_values, labels=labels).loss, F.cross_entropy(logits, labels))
