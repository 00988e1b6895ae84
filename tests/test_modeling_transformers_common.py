"""transformers' own common model tests (`ModelTesterMixin`) run against the A2MIM classes, one tester per family.

The mixin comes from the `tests/` folder of the transformers sdist of the installed version, which `make test`
unpacks (as the package `transformers_tests`) into `.cache/transformers-tests/<version>/`; nothing of it lives in
this repository. Without that folder these tests skip and say how to get it. The sdist does not ship the two modules
`test_modeling_common` imports its export and generation mixins from (`tests/exporters`, `tests/generation`); neither
applies to an image encoder, so they are stood in for by empty mixins below.
"""

import sys
import types
import unittest
from pathlib import Path
from unittest import mock

import pytest
import torch
import transformers
from torch import nn
from transformers.models.auto import modeling_auto

from modeling_a2mim import A2MIMConfig, A2MIMForImageClassification, A2MIMForMaskedImageModeling, A2MIMModel

from .helpers import tiny_convnext_config, tiny_resnet_config, tiny_vit_config

TRANSFORMERS_TESTS = Path(__file__).resolve().parents[1] / ".cache" / "transformers-tests" / transformers.__version__

if not (TRANSFORMERS_TESTS / "transformers_tests" / "test_modeling_common.py").is_file():
    pytest.skip(
        f"transformers' common model tests are not unpacked in {TRANSFORMERS_TESTS}; run `make transformers-tests` (it "
        f"fetches the transformers=={transformers.__version__} sdist with pip download) to run them.",
        allow_module_level=True,
    )
pytest.importorskip(
    "parameterized", reason="transformers' common model tests need `parameterized` (pip install -e '.[test]')"
)

sys.path.insert(0, str(TRANSFORMERS_TESTS))
STAND_INS = (("exporters.test_export", "ExportTesterMixin"), ("generation.test_utils", "GenerationTesterMixin"))
for name, mixin in STAND_INS:
    package, module = f"transformers_tests.{name}".rsplit(".", 1)
    sys.modules.setdefault(package, types.ModuleType(package))
    stand_in = types.ModuleType(f"{package}.{module}")
    setattr(stand_in, mixin, type(mixin, (), {}))
    sys.modules.setdefault(f"{package}.{module}", stand_in)

import transformers_tests.test_modeling_common as common_tests  # noqa: E402
from transformers_tests.test_modeling_common import ModelTesterMixin  # noqa: E402

_zero_init = common_tests._config_zero_init


def _zero_init_keeping_image_statistics(config):
    """The mixin's `_config_zero_init` sets every field named `*_std` to 1e-10, meaning init stds;
    `A2MIMConfig.image_std` is the normalization statistic (validated with `image_mean`): it keeps its value."""
    zeroed = _zero_init(config)
    if isinstance(zeroed, A2MIMConfig):
        zeroed.image_std = config.image_std
    return zeroed


common_tests._config_zero_init = _zero_init_keeping_image_statistics

ALL_CLASSES = (A2MIMModel, A2MIMForMaskedImageModeling, A2MIMForImageClassification)


class A2MIMModelTester:
    """Tiny configs and inputs of one family, in the form `ModelTesterMixin` expects."""

    def __init__(self, make_config, batch_size=2):
        self.make_config = make_config
        self.batch_size = batch_size
        config = make_config()
        self.image_size = config.image_size
        self.num_channels = config.num_channels
        self.is_vit_family = config.is_vit_family
        if config.is_vit_family:
            self.num_hidden_layers = config.num_mask_layers
            self.hidden_size = config.backbone_config.hidden_size
            self.num_attention_heads = config.backbone_config.num_attention_heads
            self.seq_length = (config.image_size // config.encoder_stride) ** 2 + 1
        else:
            self.expected_num_hidden_layers = config.num_mask_layers + 1  # every stage's input and the last output
        self.mask_grid_size = config.mask_grid_size
        self.is_training = True
        # For the mask the attention tests build: `num_masks` ones then zeros, `mask_length` entries (the flat grid).
        self.mask_length = config.mask_grid_size**2
        self.num_masks = self.mask_length // 2

    def get_config(self):
        return self.make_config(num_labels=3)

    def prepare_config_and_inputs_for_common(self):
        pixel_values = torch.randn(self.batch_size, self.num_channels, self.image_size, self.image_size)
        return self.get_config(), {"pixel_values": pixel_values}


class A2MIMCommonTests(ModelTesterMixin):
    all_model_classes = ALL_CLASSES
    make_config = None
    test_resize_embeddings = False  # image encoders have no token embeddings to resize
    test_torch_exportable = False  # the export mixin is not in the sdist (see the module docstring)

    def setUp(self):
        self.model_tester = A2MIMModelTester(type(self).make_config)
        # The mixin knows a base model and a classifier by their names in transformers' static model tables, as an
        # in-tree model would be listed there (during each test only; our Auto registration is unaffected).
        for table, name in (("MODEL_MAPPING_NAMES", "A2MIMModel"),
                            ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES", "A2MIMForImageClassification")):
            patcher = mock.patch.dict(getattr(modeling_auto, table), {"a2mim": name})
            patcher.start()
            self.addCleanup(patcher.stop)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if model_class is A2MIMForMaskedImageModeling:
            # A fixed mask: without one the model draws a random mask per call.
            grid = self.model_tester.mask_grid_size
            mask = torch.zeros(inputs_dict["pixel_values"].shape[0], grid, grid, dtype=torch.bool)
            mask[:, ::2] = True
            inputs_dict["bool_masked_pos"] = mask.to(inputs_dict["pixel_values"].device)
        return inputs_dict

    def test_model_get_set_embeddings(self):
        # The mixin's version expects token embeddings (`nn.Embedding`); an image model's input embedding is its
        # patch embedding or stem, as transformers' own vision model tests check.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            self.assertIsInstance(model.get_input_embeddings(), nn.Module)
            self.assertIsNone(model.get_output_embeddings())


class A2MIMViTFamilyTest(A2MIMCommonTests, unittest.TestCase):
    make_config = staticmethod(tiny_vit_config)


class A2MIMCNNFamilyTests(A2MIMCommonTests):
    """The CNN families: feature maps instead of token sequences, no attentions, no gradient checkpointing."""

    has_attentions = False

    def test_hidden_states_output(self):
        # The mixin's version expects `(seq_length, hidden_size)` token sequences; a CNN returns feature maps, each
        # stage halving the resolution, as transformers' own ResNet / ConvNeXt tests check.
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config).eval()
            with torch.no_grad():
                hidden_states = model(**self._prepare_for_class(inputs_dict, model_class),
                                      output_hidden_states=True).hidden_states
            self.assertEqual(len(hidden_states), self.model_tester.expected_num_hidden_layers)
            self.assertEqual(hidden_states[-1].shape[1:], (config.encoder_hidden_size,
                                                           config.image_size // config.encoder_stride,
                                                           config.image_size // config.encoder_stride))
            sizes = [state.shape[-1] for state in hidden_states]
            self.assertEqual(sizes, sorted(sizes, reverse=True))

    _NO_CHECKPOINTING = "transformers' CNN encoders have no gradient checkpointing; the clear refusal is tested in " \
        "test_modeling_hooks.py::test_gradient_checkpointing_keeps_the_stock_signature_and_gradients"

    @unittest.skip(_NO_CHECKPOINTING)
    def test_training_gradient_checkpointing(self):
        pass

    @unittest.skip(_NO_CHECKPOINTING)
    def test_training_gradient_checkpointing_use_reentrant_false(self):
        pass

    @unittest.skip(_NO_CHECKPOINTING)
    def test_training_gradient_checkpointing_use_reentrant_true(self):
        pass

    @unittest.skip(_NO_CHECKPOINTING)
    def test_gradient_checkpointing_backward_compatibility(self):
        pass

    @unittest.skip(_NO_CHECKPOINTING)
    def test_gradient_checkpointing_enable_disable(self):
        pass

    @unittest.skip(_NO_CHECKPOINTING)
    def test_peft_gradient_checkpointing_enable_disable(self):
        pass


class A2MIMResNetFamilyTest(A2MIMCNNFamilyTests, unittest.TestCase):
    make_config = staticmethod(tiny_resnet_config)


class A2MIMConvNextFamilyTest(A2MIMCNNFamilyTests, unittest.TestCase):
    make_config = staticmethod(tiny_convnext_config)
