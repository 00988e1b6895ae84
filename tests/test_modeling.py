import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import (
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForMaskedImageModeling,
    BeitForImageClassification,
    ConvNextForImageClassification,
    ResNetForImageClassification,
    ViTForImageClassification,
    pipeline,
)

from modeling_a2mim import (
    A2MIMConfig,
    A2MIMForImageClassification,
    A2MIMForMaskedImageModeling,
    A2MIMModel,
    BlockMaskGenerator,
)

from .helpers import tiny_convnext_config, tiny_resnet_config, tiny_vit_config

# Each family at its tiniest, and the CPU-sized presets users run.
FAMILIES = {
    "vit": tiny_vit_config,
    "resnet": tiny_resnet_config,
    "convnext": tiny_convnext_config,
    "vit-micro": lambda: A2MIMConfig.from_preset("vit-micro"),
    "resnet-micro": lambda: A2MIMConfig.from_preset("resnet-micro"),
    "convnext-micro": lambda: A2MIMConfig.from_preset("convnext-micro"),
}
STOCK_CLASSIFIER = {
    "vit": BeitForImageClassification,
    "resnet": ResNetForImageClassification,
    "convnext": ConvNextForImageClassification,
}


def _batch(config, batch_size=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    size = config.image_size
    pixels = torch.randn(batch_size, 3, size, size, generator=generator)
    mask = BlockMaskGenerator.from_config(config)(batch_size, generator)
    return pixels, mask


@pytest.mark.parametrize("family", FAMILIES)
def test_one_batch_is_overfitted(family):
    config = FAMILIES[family]()
    model = A2MIMForMaskedImageModeling(config)
    pixels, mask = _batch(config)
    # a smooth, learnable image: low-frequency pattern instead of white noise
    pixels = torch.nn.functional.interpolate(pixels[:, :, :4, :4], size=config.image_size, mode="bilinear")
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(50):
        loss = model(pixels, bool_masked_pos=mask).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("family", FAMILIES)
def test_save_and_load_through_auto_classes_give_identical_outputs(family, tmp_path):
    config = FAMILIES[family]()
    model = A2MIMForMaskedImageModeling(config).eval()
    pixels, mask = _batch(config)
    with torch.no_grad():
        expected = model(pixels, bool_masked_pos=mask)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"]["AutoModelForMaskedImageModeling"] == "modeling_a2mim.A2MIMForMaskedImageModeling"
    assert saved["auto_map"]["AutoModel"] == "modeling_a2mim.A2MIMModel"

    loaded, info = AutoModelForMaskedImageModeling.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(loaded, A2MIMForMaskedImageModeling)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    with torch.no_grad():
        again = loaded.eval()(pixels, bool_masked_pos=mask)
    assert torch.equal(again.reconstruction, expected.reconstruction)
    assert torch.equal(again.loss, expected.loss)

    base, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(base, A2MIMModel) and not info["missing_keys"]
    with torch.no_grad():
        features = base.eval()(pixels).last_hidden_state
        assert torch.equal(features, model.a2mim(pixels).last_hidden_state)

    classifier, info = AutoModelForImageClassification.from_pretrained(tmp_path, num_labels=3, output_loading_info=True)
    assert isinstance(classifier, A2MIMForImageClassification)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    # It never masks: no mask token, and the pretraining-only weights are dropped without a report.
    assert classifier.a2mim.mask_token is None and classifier.a2mim.mask_gamma is None
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    assert not [name for name, _ in classifier.named_parameters() if "mask_" in name]
    with pytest.raises(ValueError, match="add_mask_token=False"):
        classifier.a2mim(pixels, bool_masked_pos=mask)


# The pythons that load the saved checkpoint: this one, and the oldest supported transformers' (`make test` sets
# A2MIM_OLDEST_PYTHON to its venv's): a checkpoint saved with the installed version loads there too.
LOADERS = {"this-python": sys.executable}
if os.environ.get("A2MIM_OLDEST_PYTHON"):
    LOADERS["oldest-transformers"] = os.environ["A2MIM_OLDEST_PYTHON"]


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_trust_remote_code_in_a_process_without_the_package(family, loader, tmp_path):
    config = FAMILIES[family]()
    model = A2MIMForMaskedImageModeling(config).eval()
    pixels, mask = _batch(config)
    with torch.no_grad():
        expected = model(pixels, bool_masked_pos=mask).reconstruction
    model.save_pretrained(tmp_path / "ckpt")
    torch.save({"pixels": pixels, "mask": mask, "expected": expected}, tmp_path / "io.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["modeling_a2mim"] = None  # the package must not be importable here
        import torch
        from transformers import AutoModel, AutoModelForMaskedImageModeling
        torch.set_num_threads(1)  # the same arithmetic as the test process (conftest), for bit-identical outputs
        try:
            import modeling_a2mim
            raise SystemExit("package unexpectedly importable")
        except ImportError:
            pass
        data = torch.load({str(tmp_path / "io.pt")!r}, weights_only=True)
        model = AutoModelForMaskedImageModeling.from_pretrained({str(tmp_path / "ckpt")!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            out = model.eval()(data["pixels"], bool_masked_pos=data["mask"]).reconstruction
        assert torch.equal(out, data["expected"]), (out - data["expected"]).abs().max()
        base = AutoModel.from_pretrained({str(tmp_path / "ckpt")!r}, trust_remote_code=True)
        print("OK", type(base).__name__)
        """
    )
    result = subprocess.run(
        [LOADERS[loader], "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK A2MIMModel" in result.stdout


@pytest.mark.parametrize("family", FAMILIES)
def test_exported_encoder_loads_as_a_stock_classifier(family, tmp_path):
    config = FAMILIES[family]()
    stock_class = STOCK_CLASSIFIER[config.family]
    model = A2MIMForMaskedImageModeling(config).eval()
    model.save_encoder(tmp_path)
    classifier, info = AutoModelForImageClassification.from_pretrained(
        tmp_path, num_labels=3, output_loading_info=True
    )
    assert type(classifier) is stock_class
    prefix = classifier.base_model_prefix
    assert not [k for k in info["missing_keys"] if k.startswith(prefix)], info["missing_keys"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]

    # The stock classifier's pooled features equal the A2MIM encoder's pooler output.
    pixels, _ = _batch(config)
    with torch.no_grad():
        ours = model.a2mim(pixels).pooler_output
        stock = getattr(classifier.eval(), prefix)(pixels).pooler_output.flatten(1)
    assert torch.allclose(ours, stock, atol=1e-5)

    processor = AutoImageProcessor.from_pretrained(tmp_path)
    assert processor.size == {"height": config.image_size, "width": config.image_size}
    classifier.save_pretrained(tmp_path)
    classify = pipeline("image-classification", model=str(tmp_path), device="cpu")
    image = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    predictions = classify(image, top_k=3)
    assert len(predictions) == 3 and {p["label"] for p in predictions} == {"LABEL_0", "LABEL_1", "LABEL_2"}


def test_plain_vit_backbone_exports_to_stock_vit(tmp_path):
    config = A2MIMConfig(
        backbone_config={"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "intermediate_size": 64, "patch_size": 4, "image_size": 32},
        mask_patch_size=8,
    )
    model = A2MIMForMaskedImageModeling(config)
    pixels, mask = _batch(config)
    assert model(pixels, bool_masked_pos=mask).reconstruction.shape == pixels.shape
    model.save_encoder(tmp_path)
    classifier, info = AutoModelForImageClassification.from_pretrained(tmp_path, num_labels=2,
                                                                      output_loading_info=True)
    assert type(classifier) is ViTForImageClassification
    assert not [k for k in info["missing_keys"] if k.startswith("vit.")]


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_autocast_on_cpu_gives_a_finite_loss(family):
    config = FAMILIES[family]()
    model = A2MIMForMaskedImageModeling(config)
    pixels, mask = _batch(config, batch_size=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(pixels, bool_masked_pos=mask)
    assert torch.isfinite(out.loss) and out.frequency_loss.dtype == torch.float32
    out.loss.backward()
    assert torch.isfinite(model.a2mim.mask_token.grad).all()


def test_wrong_inputs_get_clear_errors():
    config = tiny_vit_config()
    model = A2MIMForMaskedImageModeling(config)
    with pytest.raises(ValueError, match=r"pixel_values is 48x48 but the model is configured for 32x32"):
        model(torch.randn(1, 3, 48, 48))
    with pytest.raises(ValueError, match=r"expected \(batch, 3, 32, 32\)\. Convert images to 3 channels"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"bool_masked_pos has shape \(1, 8, 8\); expected \(1, 4, 4\) or \(1, 16\)"):
        model(torch.randn(1, 3, 32, 32), bool_masked_pos=torch.zeros(1, 8, 8, dtype=torch.bool))


def test_flattened_mask_and_drawn_mask():
    config = tiny_vit_config()
    model = A2MIMForMaskedImageModeling(config).eval()
    pixels, mask = _batch(config, batch_size=2)
    with torch.no_grad():
        grid = model(pixels, bool_masked_pos=mask)
        flat = model(pixels, bool_masked_pos=mask.flatten(1))
        drawn = model(pixels)
    assert torch.equal(grid.reconstruction, flat.reconstruction)
    assert drawn.bool_masked_pos.flatten(1).sum(1).tolist() == [10, 10]
