"""`FinetuningTrainer` against plain Trainer arithmetic: gradient accumulation gives the large batch's loss and weights."""

import pytest
import torch
from transformers import TrainingArguments, ViTConfig, ViTForImageClassification

from modeling_a2mim.finetuning.mixing import ClassificationLoss
from modeling_a2mim.finetuning.trainer import FinetuningTrainer
from modeling_a2mim.finetuning.transforms import collate_classification


def tiny_vit_classifier() -> ViTForImageClassification:
    """A ViT without dropout or batch statistics, so a batch of 32 and four of 8 compute the same mean loss."""
    config = ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, patch_size=4,
                       image_size=16, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    return ViTForImageClassification(config)


def train_steps(tmp_path, batch_size: int, accumulation: int, steps: int = 3):
    """`(logged losses, final weights)` of `steps` optimizer steps on the same 96 images, in the same order."""
    generator = torch.Generator().manual_seed(1)
    data = [{"pixel_values": torch.randn(3, 16, 16, generator=generator), "labels": i % 3} for i in range(96)]
    args = TrainingArguments(
        output_dir=str(tmp_path / f"b{batch_size}x{accumulation}"), per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation, max_steps=steps, learning_rate=1e-2, max_grad_norm=0.5,
        logging_steps=1, train_sampling_strategy="sequential", remove_unused_columns=False, save_strategy="no",
        report_to="none", use_cpu=True, seed=0,
    )
    model = tiny_vit_classifier()
    trainer = FinetuningTrainer(model=model, args=args, train_dataset=data, data_collator=collate_classification,
                                loss_function=ClassificationLoss("cross_entropy", label_smoothing=0.1))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return losses, {name: value.detach().clone() for name, value in model.state_dict().items()}


def test_gradient_accumulation_gives_the_large_batch_loss_and_weights(tmp_path):
    large_losses, large_weights = train_steps(tmp_path, batch_size=32, accumulation=1)
    accumulated_losses, accumulated_weights = train_steps(tmp_path, batch_size=8, accumulation=4)
    assert len(large_losses) == 3
    assert accumulated_losses == pytest.approx(large_losses, rel=1e-4)
    for name, weight in large_weights.items():
        if name.endswith("k_proj.bias"):
            # Softmax is shift-invariant, so the key bias's true gradient is 0: AdamW turns its rounding noise (which
            # differs between one batch and four) into lr-sized steps of arbitrary sign.
            continue
        torch.testing.assert_close(accumulated_weights[name], weight, rtol=1e-4, atol=1e-5, msg=name)
