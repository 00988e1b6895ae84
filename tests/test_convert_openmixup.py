"""The openmixup converter against reference networks written here in the openmixup layouts (torchvision ResNet
names, mmcv BEiT names, mmcls ConvNeXt names), independent of the transformers modules: tiny sizes, random
non-trivial weights; the released full-size layouts are checked by shape on the meta device."""

import functools
import json
import logging

import pytest
import torch
from torch import nn
from transformers import AutoModelForImageClassification

from modeling_a2mim import A2MIMConfig, A2MIMForMaskedImageModeling
from modeling_a2mim.convert_openmixup import (
    RECOMPUTED_BUFFERS,
    convert_openmixup_checkpoint,
    detect_family,
    infer_architecture,
    main,
    rename_state_dict,
    resolve_config,
)
from tests.helpers import tiny_convnext_config, tiny_resnet_config, tiny_vit_config

TOLERANCE = 1e-4


# ----- reference ResNet (torchvision names, v1.5: stride on the 3x3 conv) ---------------------------------------------
class RefBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride, bottleneck):
        super().__init__()
        if bottleneck:
            mid = out_channels // 4
            specs = [(in_channels, mid, 1, 1), (mid, mid, 3, stride), (mid, out_channels, 1, 1)]
        else:
            specs = [(in_channels, out_channels, 3, stride), (out_channels, out_channels, 3, 1)]
        for index, (cin, cout, kernel, conv_stride) in enumerate(specs, start=1):
            setattr(self, f"conv{index}", nn.Conv2d(cin, cout, kernel, conv_stride, kernel // 2, bias=False))
            setattr(self, f"bn{index}", nn.BatchNorm2d(cout))
        self.num_convs = len(specs)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x):
        out = x
        for index in range(1, self.num_convs + 1):
            out = getattr(self, f"bn{index}")(getattr(self, f"conv{index}")(out))
            if index < self.num_convs:
                out = out.relu()
        identity = self.downsample(x) if self.downsample is not None else x
        return (out + identity).relu()


class RefResNet(nn.Module):
    """openmixup MIMResNet / ResNet: stem, 4 stages; optional mask token (+ gamma) at the input of `mask_layer`."""

    def __init__(self, embedding, widths, depths, bottleneck, mask_layer=3, with_gamma=True):
        super().__init__()
        self.conv1 = nn.Conv2d(3, embedding, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(embedding)
        channels = embedding
        for stage, (width, depth) in enumerate(zip(widths, depths), start=1):
            blocks = [RefBlock(channels if j == 0 else width, width, 2 if stage > 1 and j == 0 else 1, bottleneck)
                      for j in range(depth)]  # fmt: skip
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            channels = width
        self.mask_layer = mask_layer
        mask_channels = ([embedding] + list(widths))[mask_layer]
        self.mask_token = nn.Parameter(torch.randn(1, mask_channels, 1, 1))
        self.mask_gamma = nn.Parameter(torch.rand(1, mask_channels, 1, 1)) if with_gamma else None

    def forward(self, x, mask=None):
        x = nn.functional.max_pool2d(self.bn1(self.conv1(x)).relu(), 3, 2, 1)
        for stage in range(4):
            if mask is not None and stage == self.mask_layer:
                scale = x.shape[-1] // mask.shape[-1]
                m = mask[:, None].float().repeat_interleave(scale, 2).repeat_interleave(scale, 3)
                if self.mask_gamma is not None:
                    x = x * (1 - m) + self.mask_gamma * x * m
                x = x + self.mask_token * m
            x = getattr(self, f"layer{stage + 1}")(x)
        return x


# ----- reference BEiT-style ViT (mmcv names) -------------------------------------------------------------------------
@functools.lru_cache
def reference_relative_position_index(grid):
    """BEiT index: (dy + grid - 1) * (2 * grid - 1) + (dx + grid - 1) between patches; 3 extra entries for cls."""
    num_distances = (2 * grid - 1) ** 2 + 3
    coords = [(y, x) for y in range(grid) for x in range(grid)]
    index = torch.empty(len(coords) + 1, len(coords) + 1, dtype=torch.long, device="cpu")  # cached: never meta
    for i, (yi, xi) in enumerate(coords, start=1):
        for j, (yj, xj) in enumerate(coords, start=1):
            index[i, j] = (yi - yj + grid - 1) * (2 * grid - 1) + (xi - xj + grid - 1)
    index[0, :] = num_distances - 3
    index[:, 0] = num_distances - 2
    index[0, 0] = num_distances - 1
    return index


class RefAttention(nn.Module):
    def __init__(self, dim, heads, grid):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.randn(dim) * 0.1)
        self.v_bias = nn.Parameter(torch.randn(dim) * 0.1)
        self.relative_position_bias_table = nn.Parameter(torch.randn((2 * grid - 1) ** 2 + 3, heads))
        self.register_buffer("relative_position_index", reference_relative_position_index(grid).clone())
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, tokens, dim = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        q, k, v = nn.functional.linear(x, self.qkv.weight, bias).view(batch, tokens, 3, self.heads, -1).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
        rel = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        scores = scores + rel.view(tokens, tokens, -1).permute(2, 0, 1)
        return self.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, tokens, dim))


class RefFFN(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dim, hidden), nn.GELU()), nn.Linear(hidden, dim))

    def forward(self, x):
        return self.layers(x)


class RefLayer(nn.Module):
    def __init__(self, dim, heads, hidden, grid):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefAttention(dim, heads, grid)
        self.ffn = RefFFN(dim, hidden)
        self.gamma_1 = nn.Parameter(torch.rand(dim))
        self.gamma_2 = nn.Parameter(torch.rand(dim))

    def forward(self, x):
        x = x + self.gamma_1 * self.attn(self.ln1(x))
        return x + self.gamma_2 * self.ffn(self.ln2(x))


class RefPatchEmbed(nn.Module):
    def __init__(self, dim, patch):
        super().__init__()
        self.projection = nn.Conv2d(3, dim, patch, patch)


class RefViT(nn.Module):
    """openmixup SimMIMViT (`final="ln1"`: pretraining) or fine-tuning VisionTransformer (`final="fc_norm"`)."""

    def __init__(self, dim, depth, heads, hidden, patch, image, final):
        super().__init__()
        grid = image // patch
        self.patch_embed = RefPatchEmbed(dim, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid + 1, dim))
        self.layers = nn.ModuleList(RefLayer(dim, heads, hidden, grid) for _ in range(depth))
        self.final = final
        setattr(self, final, nn.LayerNorm(dim, eps=1e-6))
        if final == "ln1":
            self.mask_token = nn.Parameter(torch.randn(1, 1, dim))

    def forward(self, x, mask=None):
        """Pretraining: `(B, D, h, w)` normalized patch tokens; fine-tuning: `(B, D)` fc_norm(mean patch token)."""
        tokens = self.patch_embed.projection(x)
        batch, dim, h, w = tokens.shape
        tokens = tokens.flatten(2).transpose(1, 2)
        if mask is not None:
            scale = h // mask.shape[-1]
            m = mask.float().repeat_interleave(scale, 1).repeat_interleave(scale, 2).reshape(batch, -1, 1)
            tokens = tokens + self.mask_token * m
        x = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1) + self.pos_embed
        for layer in self.layers:
            x = layer(x)
        if self.final == "fc_norm":
            return self.fc_norm(x[:, 1:].mean(1))
        return self.ln1(x)[:, 1:].transpose(1, 2).reshape(batch, dim, h, w)


# ----- openmixup checkpoints ------------------------------------------------------------------------------------------
def randomize_(module):
    """Non-trivial weights: conv/linear randn / sqrt(fan_in), norm scales 1 + 0.1 randn, biases and BN statistics
    random (the tokens, position embeddings, tables and layer scales keep their random init); eval mode."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "weight" and param.dim() > 1:
                param.copy_(torch.randn_like(param) / param[0].numel() ** 0.5)
            elif leaf == "weight":
                param.copy_(1 + 0.1 * torch.randn_like(param))
            elif leaf == "bias":
                param.copy_(0.1 * torch.randn_like(param))
        for submodule in module.modules():
            if isinstance(submodule, nn.BatchNorm2d):
                submodule.running_mean.copy_(0.1 * torch.randn_like(submodule.running_mean))
                submodule.running_var.copy_(torch.rand_like(submodule.running_var) + 0.5)
                submodule.num_batches_tracked.fill_(1000)
    return module.eval()


def openmixup_checkpoint(backbone, neck=None, head=None):
    """`{"state_dict": ..., "meta": ...}` with `backbone.`, `neck.decoder_pred.0.` and `head.fc.` keys."""
    state_dict = {f"backbone.{k}": v.clone() for k, v in backbone.state_dict().items()}
    if neck is not None:
        state_dict.update({f"neck.decoder_pred.0.{k}": v.clone() for k, v in neck.state_dict().items()})
    if head is not None:
        state_dict.update({f"head.fc.{k}": v.clone() for k, v in head.state_dict().items()})
    return {"state_dict": state_dict, "meta": {"epoch": 100, "mmcv_version": "1.7.0"}}


def tiny_bottleneck_config(mask_gamma_init=1e-6):
    """A custom (non-preset) bottleneck ResNet: widths 16..128, depths (1, 2, 1, 1), 64 px."""
    backbone = {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 2, 1, 1], "layer_type": "bottleneck"}
    return tiny_resnet_config(backbone=backbone, mask_gamma_init=mask_gamma_init)


def tiny_resnet_pretraining():
    backbone = randomize_(RefResNet(8, [16, 32, 64, 128], [1, 2, 1, 1], bottleneck=True))
    neck = nn.Conv2d(128, 32 * 32 * 3, 1)
    return backbone, neck, openmixup_checkpoint(backbone, neck=neck)


def tiny_vit_pretraining():
    backbone = randomize_(RefViT(dim=32, depth=2, heads=2, hidden=64, patch=4, image=32, final="ln1"))
    neck = nn.Conv2d(32, 4 * 4 * 3, 1)
    return backbone, neck, openmixup_checkpoint(backbone, neck=neck)


def assert_close(actual, expected):
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() < TOLERANCE


def block_mask(batch, grid):
    return torch.rand(batch, grid, grid) < 0.6


def assert_pretraining_matches(model, saved, backbone, neck, pixels, mask):
    """The converted model and its reload from `saved` give the reference's features (unmasked, masked: the token
    acts) and decoder output."""
    stride = pixels.shape[-1] // backbone(pixels).shape[-1]
    with torch.no_grad():
        for reloaded in (model, A2MIMForMaskedImageModeling.from_pretrained(saved).eval()):
            assert_close(reloaded.a2mim(pixels).last_hidden_state, backbone(pixels))
            masked = reloaded.a2mim(pixels, bool_masked_pos=mask).last_hidden_state
            assert_close(masked, backbone(pixels, mask))
            assert (masked - backbone(pixels)).abs().max() > 1e-2
            assert_close(reloaded.decoder(masked), nn.functional.pixel_shuffle(neck(backbone(pixels, mask)), stride))


# ----- pretraining checkpoints ----------------------------------------------------------------------------------------
def test_resnet_pretraining_matches_reference(tmp_path):
    backbone, neck, checkpoint = tiny_resnet_pretraining()
    torch.save(checkpoint, tmp_path / "a2mim_r50_l3.pth")
    tiny_bottleneck_config().to_json_file(tmp_path / "config.json")
    main(["--checkpoint", str(tmp_path / "a2mim_r50_l3.pth"), "--output_dir", str(tmp_path / "out"),
          "--config", str(tmp_path / "config.json")])  # fmt: skip
    model = A2MIMForMaskedImageModeling.from_pretrained(tmp_path / "out").eval()

    pixels, mask = torch.randn(2, 3, 64, 64), block_mask(2, 4)
    with torch.no_grad():
        unmasked = model.a2mim(pixels).last_hidden_state
        assert_close(unmasked, backbone(pixels))
        masked = model.a2mim(pixels, bool_masked_pos=mask).last_hidden_state
        assert_close(masked, backbone(pixels, mask))
        assert (masked - unmasked).abs().max() > 1e-2  # the mask token does act
        assert_close(model.decoder(masked), nn.functional.pixel_shuffle(neck(backbone(pixels, mask)), 32))
    assert torch.equal(model.a2mim.mask_token, backbone.mask_token)
    assert torch.equal(model.a2mim.mask_gamma, backbone.mask_gamma)
    assert torch.equal(model.decoder.projection.weight, neck.weight)
    assert torch.equal(model.decoder.projection.bias, neck.bias)
    processor = json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 64, "width": 64}
    assert processor["image_mean"] == [0.485, 0.456, 0.406] and processor["image_std"] == [0.229, 0.224, 0.225]
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_push_to_hub_uploads_weights_config_processor_and_model_code(tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    calls = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.setdefault("repo", repo_id))
    monkeypatch.setattr(HfApi, "create_commit", lambda self, repo_id, operations, **kw: calls.setdefault(
        "files", sorted(op.path_in_repo for op in operations)))
    _, _, checkpoint = tiny_resnet_pretraining()
    torch.save(checkpoint, tmp_path / "a2mim_r50_l3.pth")
    tiny_bottleneck_config().to_json_file(tmp_path / "config.json")
    main(["--checkpoint", str(tmp_path / "a2mim_r50_l3.pth"), "--output_dir", str(tmp_path / "out"),
          "--config", str(tmp_path / "config.json"), "--push_to_hub", "someone/a2mim-r50"])  # fmt: skip
    assert calls["repo"] == "someone/a2mim-r50"
    assert calls["files"] == ["config.json", "configuration_a2mim.py", "losses.py", "masking.py", "model.safetensors",
                              "modeling_a2mim.py", "preprocessor_config.json", "presets.py"]


def test_vit_pretraining_matches_reference(tmp_path, caplog):
    backbone, neck, checkpoint = tiny_vit_pretraining()
    with caplog.at_level(logging.INFO, logger="modeling_a2mim.convert_openmixup"):
        model = convert_openmixup_checkpoint(checkpoint, output_dir=tmp_path, config=tiny_vit_config())
    assert "ignored 2 recomputed buffers (relative_position_index, num_batches_tracked)" in caplog.text

    assert_pretraining_matches(model, tmp_path, backbone, neck, torch.randn(2, 3, 32, 32), block_mask(2, 4))
    assert torch.equal(model.a2mim.mask_token, backbone.mask_token)
    assert torch.equal(model.decoder.projection.weight, neck.weight)
    table = model.a2mim.encoder.layers[1].relative_position_bias.relative_position_bias_table
    assert torch.equal(table, backbone.layers[1].attn.relative_position_bias_table)


@pytest.mark.parametrize("wrap", ["bare", "module_prefix"])
def test_accepts_bare_and_module_prefixed_state_dicts(tmp_path, wrap):
    backbone, _, checkpoint = tiny_vit_pretraining()
    state_dict = checkpoint["state_dict"]
    if wrap == "module_prefix":
        state_dict = {f"module.{k}": v for k, v in state_dict.items()}
    torch.save(state_dict, tmp_path / "ckpt.pth")
    model = convert_openmixup_checkpoint(tmp_path / "ckpt.pth", config=tiny_vit_config())
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert_close(model.a2mim(pixels).last_hidden_state, backbone(pixels))


# ----- fine-tuned checkpoints -----------------------------------------------------------------------------------------
def test_resnet_finetuned_becomes_stock_classifier(tmp_path):
    # resnet-micro's shape: basic blocks, widths 16..128, one block per stage; the preset is picked automatically.
    backbone = randomize_(RefResNet(16, [16, 32, 64, 128], [1, 1, 1, 1], bottleneck=False))
    head = nn.Linear(128, 7)
    checkpoint = openmixup_checkpoint(backbone, head=head)
    for key in ("mask_token", "mask_gamma"):
        del checkpoint["state_dict"][f"backbone.{key}"]
    torch.save(checkpoint, tmp_path / "ft.pth")
    main(["--checkpoint", str(tmp_path / "ft.pth"), "--output_dir", str(tmp_path / "out")])

    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_type"] == "resnet" and "auto_map" not in config
    classifier = AutoModelForImageClassification.from_pretrained(tmp_path / "out").eval()
    assert type(classifier).__name__ == "ResNetForImageClassification"
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = head(backbone(pixels).mean(dim=(2, 3)))
        assert_close(classifier(pixels).logits, expected)


def test_vit_finetuned_with_ema_becomes_stock_classifier(tmp_path):
    # vit-micro's shape (width 96, 4 blocks, 3 heads, patch 4, 32 px); the EMA copies are the ones converted.
    def build():
        return randomize_(RefViT(dim=96, depth=4, heads=3, hidden=384, patch=4, image=32, final="fc_norm"))

    raw, ema = build(), build()
    raw_head, ema_head = nn.Linear(96, 5), nn.Linear(96, 5)
    checkpoint = openmixup_checkpoint(raw, head=raw_head)
    for name, tensor in openmixup_checkpoint(ema, head=ema_head)["state_dict"].items():
        if not name.endswith("relative_position_index"):  # EMA tracks parameters only
            checkpoint["state_dict"]["ema_" + name.replace(".", "_")] = tensor
    torch.save(checkpoint, tmp_path / "ft.pth")

    pixels = torch.randn(2, 3, 32, 32)
    for use_ema, (backbone, head) in ((True, (ema, ema_head)), (False, (raw, raw_head))):
        out = tmp_path / f"out_{use_ema}"
        convert_openmixup_checkpoint(tmp_path / "ft.pth", output_dir=out, preset="vit-micro", use_ema=use_ema)
        classifier = AutoModelForImageClassification.from_pretrained(out).eval()
        assert type(classifier).__name__ == "BeitForImageClassification"
        assert classifier.config.use_mean_pooling and classifier.config.num_labels == 5
        with torch.no_grad():
            assert_close(classifier(pixels).logits, head(backbone(pixels)))


# ----- refusals -------------------------------------------------------------------------------------------------------
def test_missing_key_is_refused():
    _, _, checkpoint = tiny_resnet_pretraining()
    del checkpoint["state_dict"]["backbone.layer2.1.bn2.running_var"]
    del checkpoint["state_dict"]["neck.decoder_pred.0.bias"]
    with pytest.raises(ValueError, match=r"missing keys .*stages\.1\.layers\.1\.layer\.1\.normalization\.running_var") as error:
        convert_openmixup_checkpoint(checkpoint, config=tiny_bottleneck_config())
    assert "decoder.projection.bias" in str(error.value)


def test_unknown_key_is_refused():
    _, _, checkpoint = tiny_vit_pretraining()
    checkpoint["state_dict"]["backbone.layers.0.attn.k_bias"] = torch.zeros(32)
    checkpoint["state_dict"]["head.extra.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"unexpected keys .*'backbone\.layers\.0\.attn\.k_bias', 'head\.extra\.weight'"):
        convert_openmixup_checkpoint(checkpoint, config=tiny_vit_config())


def test_key_the_model_lacks_is_refused():
    # a gamma in the checkpoint, none in the config: mapped, but not part of the target model.
    _, _, checkpoint = tiny_resnet_pretraining()
    with pytest.raises(ValueError, match=r"unexpected keys .*\['backbone\.mask_gamma'\]"):
        convert_openmixup_checkpoint(checkpoint, config=tiny_bottleneck_config(mask_gamma_init=None))


def test_wrong_shape_is_refused():
    _, _, checkpoint = tiny_vit_pretraining()
    checkpoint["state_dict"]["backbone.mask_token"] = torch.zeros(1, 1, 31)
    checkpoint["state_dict"]["neck.decoder_pred.0.weight"] = torch.zeros(48, 32, 3, 3)
    with pytest.raises(ValueError, match=r"shape mismatches") as error:
        convert_openmixup_checkpoint(checkpoint, config=tiny_vit_config())
    assert "backbone.mask_token (1, 1, 31) -> a2mim.mask_token (1, 1, 32)" in str(error.value)
    assert "neck.decoder_pred.0.weight (48, 32, 3, 3) -> decoder.projection.weight (48, 32, 1, 1)" in str(error.value)


class NotAWeight:
    """A custom class: unpickling it needs more than `weights_only` allows."""


def test_unsafe_pickle_is_refused(tmp_path):
    _, _, checkpoint = tiny_vit_pretraining()
    checkpoint["meta"]["hook"] = NotAWeight()
    torch.save(checkpoint, tmp_path / "unsafe.pth")
    with pytest.raises(ValueError, match=r"Refusing to load .*unsafe\.pth.*arbitrary code.*weights_only=False"):
        convert_openmixup_checkpoint(tmp_path / "unsafe.pth", config=tiny_vit_config())


def test_architecture_mismatch_with_preset_is_refused():
    _, _, checkpoint = tiny_vit_pretraining()
    with pytest.raises(ValueError, match=r"does not match preset 'vit-base': hidden_size: checkpoint 32, preset 'vit-base' 768"):
        convert_openmixup_checkpoint(checkpoint, preset="vit-base")


def test_no_matching_preset_lists_presets():
    _, _, checkpoint = tiny_resnet_pretraining()
    with pytest.raises(ValueError, match=r"No preset matches .*'depths': \[1, 2, 1, 1\].*resnet-50, resnet-101"):
        convert_openmixup_checkpoint(checkpoint)


def test_use_ema_without_ema_copies_is_refused():
    _, _, checkpoint = tiny_vit_pretraining()
    with pytest.raises(ValueError, match="use_ema=True, but the checkpoint has no EMA copies"):
        convert_openmixup_checkpoint(checkpoint, config=tiny_vit_config(), use_ema=True)


def test_nonstandard_relative_position_index_is_refused():
    _, _, checkpoint = tiny_vit_pretraining()
    index = checkpoint["state_dict"]["backbone.layers.1.attn.relative_position_index"]
    checkpoint["state_dict"]["backbone.layers.1.attn.relative_position_index"] = index.flip(0)
    with pytest.raises(ValueError, match=r"differ from the BEiT index for a 8x8 window.*layers\.1\.attn"):
        convert_openmixup_checkpoint(checkpoint, config=tiny_vit_config())


# ----- reference ConvNeXt (mmcls names, openmixup MIMConvNeXt) ------------------------------------------------------
class RefLayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a `(B, C, H, W)` map."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class RefConvNeXtBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.depthwise_conv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = RefLayerNorm2d(dim, eps=1e-6)
        self.pointwise_conv1 = nn.Linear(dim, 4 * dim)
        self.pointwise_conv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.rand(dim))

    def forward(self, x):
        y = self.norm(self.depthwise_conv(x)).permute(0, 2, 3, 1)
        y = self.pointwise_conv2(nn.functional.gelu(self.pointwise_conv1(y))).permute(0, 3, 1, 2)
        return x + self.gamma.view(1, -1, 1, 1) * y


class RefConvNeXt(nn.Module):
    """openmixup MIMConvNeXt: `downsample_layers[i]` then `stages[i]`; the mask token (+ gamma) right after
    `downsample_layers[mask_layer]`; `norm3` per position (pretraining) or on the pooled features (fine-tuned)."""

    def __init__(self, widths, depths, mask_layer=3, pretraining=True):
        super().__init__()
        self.downsample_layers = nn.ModuleList([nn.Sequential(nn.Conv2d(3, widths[0], 4, 4),
                                                              RefLayerNorm2d(widths[0], eps=1e-6))])
        for stage in range(1, 4):
            # transformers' downsampling LayerNorm has eps 1e-6 (mmcls: 1e-5), see CONVNEXT_RULES.
            self.downsample_layers.append(nn.Sequential(RefLayerNorm2d(widths[stage - 1], eps=1e-6),
                                                        nn.Conv2d(widths[stage - 1], widths[stage], 2, 2)))
        self.stages = nn.ModuleList(nn.Sequential(*[RefConvNeXtBlock(w) for _ in range(d)])
                                    for w, d in zip(widths, depths))  # fmt: skip
        self.norm3 = nn.LayerNorm(widths[-1], eps=1e-6)
        self.mask_layer, self.pretraining = mask_layer, pretraining
        if pretraining:
            self.mask_token = nn.Parameter(torch.randn(1, widths[mask_layer], 1, 1))
            self.mask_gamma = nn.Parameter(torch.rand(1, widths[mask_layer], 1, 1))

    def forward(self, x, mask=None):
        for stage in range(4):
            x = self.downsample_layers[stage](x)
            if mask is not None and stage == self.mask_layer:
                scale = x.shape[-1] // mask.shape[-1]
                m = mask[:, None].float().repeat_interleave(scale, 2).repeat_interleave(scale, 3)
                x = x * (1 - m) + self.mask_gamma * x * m + self.mask_token * m
            x = self.stages[stage](x)
        if self.pretraining:
            return self.norm3(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.norm3(x.mean(dim=(2, 3)))


def test_convnext_pretraining_matches_reference(tmp_path):
    backbone = randomize_(RefConvNeXt([8, 16, 32, 64], [1, 1, 2, 1]))
    neck = nn.Conv2d(64, 32 * 32 * 3, 1)
    config = tiny_convnext_config(backbone={"depths": [1, 1, 2, 1]})
    model = convert_openmixup_checkpoint(openmixup_checkpoint(backbone, neck=neck), output_dir=tmp_path, config=config)
    assert_pretraining_matches(model, tmp_path, backbone, neck, torch.randn(2, 3, 64, 64), block_mask(2, 2))
    assert torch.equal(model.a2mim.mask_gamma, backbone.mask_gamma)


def test_convnext_finetuned_becomes_stock_classifier(tmp_path):
    # convnext-micro's shape: the preset is picked automatically.
    backbone = randomize_(RefConvNeXt([16, 32, 64, 128], [1, 1, 1, 1], pretraining=False))
    head = nn.Linear(128, 5)
    main(["--checkpoint", _saved(openmixup_checkpoint(backbone, head=head), tmp_path), "--output_dir",
          str(tmp_path / "out")])
    classifier = AutoModelForImageClassification.from_pretrained(tmp_path / "out").eval()
    assert type(classifier).__name__ == "ConvNextForImageClassification"
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_close(classifier(pixels).logits, head(backbone(pixels)))


def _saved(checkpoint, folder) -> str:
    torch.save(checkpoint, folder / "ckpt.pth")
    return str(folder / "ckpt.pth")


def _released_layout(preset: str) -> dict:
    """The openmixup pretraining state dict layout of a released preset, as meta tensors (shapes only)."""
    config = A2MIMConfig.from_preset(preset)
    backbone = config.backbone_config
    with torch.device("meta"):
        if config.family == "resnet":
            encoder = RefResNet(64, backbone.hidden_sizes, backbone.depths, bottleneck=True)
        elif config.family == "convnext":
            encoder = RefConvNeXt(backbone.hidden_sizes, backbone.depths)
        else:
            encoder = RefViT(backbone.hidden_size, backbone.num_hidden_layers, backbone.num_attention_heads,
                             backbone.intermediate_size, 16, config.image_size, final="ln1")
        neck = nn.Conv2d(config.encoder_hidden_size, config.encoder_stride**2 * 3, 1)
    return openmixup_checkpoint(encoder, neck=neck)["state_dict"]


@pytest.mark.parametrize("preset", ["resnet-50", "resnet-101", "resnet-152", "resnet-200", "vit-small", "vit-base",
                                    "vit-large", "deit-small", "convnext-tiny", "convnext-small", "convnext-base"])
def test_released_layouts_are_recognized_as_their_preset(preset):
    state_dict = _released_layout(preset)
    family = detect_family(state_dict)
    config = resolve_config(infer_architecture(state_dict, family))
    assert config.preset == preset
    # Every tensor of the layout finds its place, with its shape, in the A2MIM model of that preset (on meta).
    with torch.device("meta"):
        expected = {k: v.shape for k, v in A2MIMForMaskedImageModeling(config).state_dict().items()
                    if k.rsplit(".", 1)[-1] not in RECOMPUTED_BUFFERS}  # fmt: skip
    renamed, _, unknown = rename_state_dict(state_dict, family, "a2mim.encoder.")
    assert not unknown
    assert {target: tensor.shape for target, (_, tensor) in renamed.items()} == expected
