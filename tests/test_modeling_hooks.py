"""A2MIM on the stock encoders: their own forward, outputs and switches, with the mask token entering through hooks."""

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import transformers
from packaging.version import Version
from transformers import BeitConfig, BeitModel, TrainerCallback

from modeling_a2mim import (
    A2MIMConfig,
    A2MIMForImageClassification,
    A2MIMForMaskedImageModeling,
    A2MIMModel,
    BlockMaskGenerator,
)
from modeling_a2mim.modeling_a2mim import _ACTIVE

from .helpers import tiny_convnext_config, tiny_resnet_config, tiny_vit_config

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {"vit": tiny_vit_config, "resnet": tiny_resnet_config, "convnext": tiny_convnext_config}
# mask_layer > 0 for the ViT family puts the token at a transformer block's input instead of the patch embedding.
MASK_SITES = {
    "vit-embedding": lambda: tiny_vit_config(),
    "vit-block1": lambda: tiny_vit_config(mask_layer=1),
    "resnet-stage3": lambda: tiny_resnet_config(),
    "convnext-stage3": lambda: tiny_convnext_config(),
    "convnext-stem": lambda: tiny_convnext_config(mask_layer=0, mask_patch_size=16),
}


def _inputs(config, batch_size=2):
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(batch_size, 3, config.image_size, config.image_size, generator=generator)
    return pixels, BlockMaskGenerator.from_config(config)(batch_size, generator)


def _feature_map(model, stock_last_hidden_state):
    """The stock encoder's last hidden state as A2MIM's `(B, C, h, w)` feature map."""
    config = model.config
    if config.family == "convnext":  # the final LayerNorm per position
        return model.encoder.layernorm(stock_last_hidden_state.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    if not config.is_vit_family:
        return stock_last_hidden_state
    tokens = stock_last_hidden_state[:, 1:]
    side = config.image_size // config.encoder_stride
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, side, side)


@pytest.mark.parametrize("site", MASK_SITES)
def test_without_mask_the_features_and_hidden_states_are_the_stock_encoders(site):
    model = A2MIMModel(MASK_SITES[site]()).eval()
    pixels, _ = _inputs(model.config)
    with torch.no_grad():
        ours = model(pixels, output_hidden_states=True)
        stock = model.encoder(pixels, output_hidden_states=True)
    assert torch.equal(ours.last_hidden_state, _feature_map(model, stock.last_hidden_state))
    assert len(ours.hidden_states) == len(stock.hidden_states)
    for mine, theirs in zip(ours.hidden_states, stock.hidden_states):
        assert torch.equal(mine, theirs)


@pytest.mark.parametrize("site", MASK_SITES)
def test_the_mask_changes_the_hidden_states_from_where_it_enters(site):
    model = A2MIMModel(MASK_SITES[site]()).eval()
    with torch.no_grad():
        model.mask_token.normal_()
    pixels, mask = _inputs(model.config)
    with torch.no_grad():
        clean = model(pixels, output_hidden_states=True).hidden_states
        masked = model(pixels, bool_masked_pos=mask, output_hidden_states=True).hidden_states
    # The stock encoders record the input of block/stage k before calling it, and the token enters in that call (an
    # input hook, or ConvNeXt's downsampling layer inside stage k), so hidden_states[k + 1] is the first to change;
    # with mask_layer=0 of a ViT or a ConvNeXt the token enters in the patch embedding / stem, before hidden_states[0].
    layer = model.config.mask_layer
    first_changed = 0 if model.config.family in ("vit", "convnext") and layer == 0 else layer + 1
    for index in range(first_changed):
        assert torch.equal(clean[index], masked[index]), index
    for index in range(first_changed, len(clean)):
        assert not torch.allclose(clean[index], masked[index]), index


@pytest.mark.parametrize("family", FAMILIES)
def test_selective_hidden_state_capture(family):
    if family != "resnet" and Version(transformers.__version__) < Version("5.23"):
        pytest.skip("the stock encoders of transformers < 5.23 select hidden states their own way (no embedding "
                    "output); its common test test_can_capture_specific_layers_hidden_states checks A2MIM there")
    model = A2MIMModel(FAMILIES[family]()).eval()
    pixels, mask = _inputs(model.config)
    with torch.no_grad():
        every = model(pixels, bool_masked_pos=mask, output_hidden_states=True).hidden_states
        chosen = model(pixels, bool_masked_pos=mask, output_hidden_states=[0, 2, -1]).hidden_states
    assert len(chosen) == len(every)
    for index, state in enumerate(chosen):
        if index in (0, 2, len(every) - 1):
            assert torch.equal(state, every[index]), index
        else:
            assert state is None, index


def test_attentions_are_the_stock_eager_attentions():
    model = A2MIMModel._from_config(tiny_vit_config(), attn_implementation="eager").eval()
    assert model.encoder.config._attn_implementation == "eager"
    assert A2MIMModel(tiny_vit_config()).encoder.config._attn_implementation == "sdpa"
    pixels, _ = _inputs(model.config)
    with torch.no_grad():
        ours = model(pixels, output_attentions=True).attentions
        stock = model.encoder(pixels, output_attentions=True).attentions
    assert len(ours) == model.config.backbone_config.num_hidden_layers
    for mine, theirs in zip(ours, stock):
        assert mine.shape == (2, 2, 65, 65) and torch.equal(mine, theirs)
    classifier = A2MIMForImageClassification._from_config(tiny_vit_config(num_labels=2), attn_implementation="eager")
    assert len(classifier(pixels, output_attentions=True).attentions) == 2


def test_the_backbone_configs_attention_choice_is_honoured():
    backbone = tiny_vit_config().backbone_config.to_dict()
    backbone.pop("model_type")
    eager_backbone = BeitConfig(**backbone, attn_implementation="eager")
    pixels, _ = _inputs(tiny_vit_config())
    stock = BeitModel(eager_backbone).eval()
    with torch.no_grad():
        assert len(stock(pixels, output_attentions=True).attentions) == 2
    for config in (
        A2MIMConfig(backbone_config=eager_backbone, image_size=32, mask_patch_size=8),  # a config object
        A2MIMConfig(backbone_config={"model_type": "beit", **backbone, "attn_implementation": "eager"},
                    image_size=32, mask_patch_size=8),  # a dict
        tiny_vit_config(attn_implementation="eager"),  # asked of the A2MIM config itself
    ):
        model = A2MIMModel(config).eval()
        assert model.encoder.config._attn_implementation == "eager"
        with torch.no_grad():
            assert len(model(pixels, output_attentions=True).attentions) == 2
    # A choice made on the A2MIM config wins over the backbone config's, as in transformers' composite models.
    sdpa = A2MIMConfig(backbone_config=eager_backbone, image_size=32, mask_patch_size=8, attn_implementation="sdpa")
    assert A2MIMModel(sdpa).encoder.config._attn_implementation == "sdpa"


@pytest.mark.parametrize(
    "family, embedding", [("vit", "embeddings.patch_embeddings"), ("resnet", "embedder"), ("convnext", "embeddings")]
)
def test_input_embeddings_are_the_encoders_stem(family, embedding):
    model = A2MIMForMaskedImageModeling(FAMILIES[family]())
    assert model.get_input_embeddings() is model.a2mim.encoder.get_submodule(embedding)


def test_the_mask_is_reset_after_an_error_and_does_not_reach_other_threads():
    config = tiny_vit_config()
    model = A2MIMModel(config).eval()
    with torch.no_grad():
        model.mask_token.normal_()
    pixels, mask = _inputs(config)
    with torch.no_grad():
        expected = model(pixels).last_hidden_state
        with pytest.raises(ValueError, match="channel dimension"):
            model(pixels[:, :2], bool_masked_pos=mask)  # two channels: the stock patch embedding fails mid-call
        assert _ACTIVE.call is None
        assert torch.equal(model(pixels).last_hidden_state, expected)

        # While a masked call runs, an unmasked call of the same model in another thread sees no mask.
        seen = {}

        @torch.no_grad()
        def unmasked_features():
            return model(pixels).last_hidden_state

        def call_from_another_thread(module, args, output):
            if threading.current_thread() is threading.main_thread():
                worker = threading.Thread(target=lambda: seen.update(features=unmasked_features()))
                worker.start()
                worker.join()

        handle = model.encoder.layers[-1].register_forward_hook(call_from_another_thread)
        try:
            masked = model(pixels, bool_masked_pos=mask).last_hidden_state
        finally:
            handle.remove()
    assert torch.equal(seen["features"], expected) and not torch.equal(masked, expected)


@pytest.mark.parametrize("mask_layer", [0, 1])
def test_gradient_checkpointing_keeps_the_stock_signature_and_gradients(mask_layer):
    config = tiny_vit_config(mask_layer=mask_layer)
    model = A2MIMForMaskedImageModeling(config).train()
    pixels, mask = _inputs(config)
    model(pixels, bool_masked_pos=mask).loss.backward()
    reference = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    # transformers 5.23 renamed gradient_checkpointing_enable(every_n_layers=...) to activation_checkpointing_enable
    activation_checkpointing_enable = getattr(model, "activation_checkpointing_enable",
                                              model.gradient_checkpointing_enable)
    if mask_layer > 0 and Version(transformers.__version__) < Version("5.23"):
        # Its checkpointed blocks recompute their input hooks in the backward pass, after the call: no mask token.
        with pytest.raises(ValueError, match=r"mask token entering at block 1 \(mask_layer > 0\) needs transformers "
                                             r">= 5.23 \(installed: 5\.\d+\.\d+\).*Upgrade transformers"):
            activation_checkpointing_enable(every_n_layers=1)
        A2MIMForImageClassification(config).gradient_checkpointing_enable()  # no mask token: allowed
        return
    for enable in (
        lambda: activation_checkpointing_enable(every_n_layers=2),
        lambda: model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True}),
    ):
        model.zero_grad()
        enable()
        assert model.is_gradient_checkpointing
        model(pixels, bool_masked_pos=mask).loss.backward()
        assert reference.keys() == {name for name, p in model.named_parameters() if p.grad is not None}
        for name, p in model.named_parameters():
            if name in reference:
                torch.testing.assert_close(p.grad, reference[name], rtol=1e-5, atol=1e-6, msg=name)
        model.gradient_checkpointing_disable()
    resnet = A2MIMForMaskedImageModeling(tiny_resnet_config())
    with pytest.raises(ValueError, match="Gradient checkpointing is not available for the ResNet family.*"
                                         "gradient_accumulation_steps"):
        getattr(resnet, "activation_checkpointing_enable", resnet.gradient_checkpointing_enable)(every_n_layers=1)


class _RecordCheckpointing(TrainerCallback):
    def __init__(self):
        self.enabled = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.enabled = model.is_gradient_checkpointing


def test_run_pretraining_with_gradient_checkpointing(tmp_path):
    sys.path.insert(0, str(ROOT))
    import run_pretraining

    args = ["--max_steps", "1", "--use_cpu", "--gradient_checkpointing", "--max_train_samples", "4",
            "--per_device_train_batch_size", "2", "--save_strategy", "no", "--dataloader_num_workers", "0"]
    recorder = _RecordCheckpointing()
    metrics = run_pretraining.main(["--output_dir", str(tmp_path / "vit"), "--model_preset", "vit-micro", *args],
                                   callbacks=[recorder])
    assert recorder.enabled is True and metrics["train_loss"] > 0

    result = subprocess.run(
        [sys.executable, str(ROOT / "run_pretraining.py"), "--output_dir", str(tmp_path / "resnet"),
         "--model_preset", "resnet-micro", *args],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "run_pretraining.py: error: Gradient checkpointing is not available for the ResNet family"
    )
