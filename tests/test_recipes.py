"""One recipe system for both scripts: recipe tables as data, filled into the flags the user did not pass, scaled to
the user's batch; the README's tables are generated from the same data."""

import logging
from pathlib import Path

import pytest
from transformers import TrainingArguments

from modeling_a2mim import A2MIMConfig, A2MIMForMaskedImageModeling
from modeling_a2mim.finetuning.arguments import RecipeArguments, resolve_recipe
from modeling_a2mim.finetuning.recipes import PLAIN, RECIPES, finetuning_recipe_table
from modeling_a2mim.presets import PRESETS
from modeling_a2mim.training.optimization import build_parameter_groups, mask_token_lr_multiplier
from modeling_a2mim.training.recipes import (
    PRETRAINING_RECIPES,
    RESNET_NO_DECAY,
    apply_recipe,
    pretraining_recipe_table,
    recipe_for,
)

from .helpers import tiny_resnet_config

README = Path(__file__).resolve().parents[1] / "README.md"


def training_args(tmp_path, **kwargs) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, **kwargs)


@pytest.mark.parametrize("table", [pretraining_recipe_table, finetuning_recipe_table])
def test_readme_recipe_tables_are_the_code_tables(table):
    assert table() in README.read_text(encoding="utf-8"), (
        f"README's table differs from {table.__name__}(); paste the output of "
        f"`python -m {table.__module__}` into README.md."
    )


def test_every_preset_has_its_pretraining_recipe_and_the_micro_ones_show_their_learning_rate():
    assert set(PRESETS) <= set(PRETRAINING_RECIPES)
    for name in ("vit-micro", "resnet-micro", "convnext-micro"):
        assert PRETRAINING_RECIPES[name].learning_rate == 1.6e-2
        assert f"| `{name}` | 0.016 |" in pretraining_recipe_table()
    assert PRETRAINING_RECIPES["deit-small"].learning_rate == 2e-4 and PRETRAINING_RECIPES["deit-small"].schedule == "cosine"
    assert PRETRAINING_RECIPES["vit-large"].step_decay_at == 700 / 800
    assert PRETRAINING_RECIPES["resnet-101"].warmup == pytest.approx(10 / 300)


def test_a_checkpoint_keeps_its_presets_recipe_and_an_unknown_one_gets_its_familys(caplog):
    config = A2MIMConfig.from_preset("resnet-micro")
    assert recipe_for(config) == ("resnet-micro", PRETRAINING_RECIPES["resnet-micro"])  # config.preset, saved
    assert recipe_for(config, "resnet-50")[0] == "resnet-50"  # an explicit preset wins
    config.preset = None
    with caplog.at_level(logging.INFO, logger="modeling_a2mim.training.recipes"):
        assert recipe_for(config) == ("resnet-50", PRETRAINING_RECIPES["resnet-50"])
    assert "No recipe for preset None: using the resnet family's paper recipe 'resnet-50'." in caplog.text


def test_pretraining_recipe_fills_unset_flags_scaled_to_the_global_batch(tmp_path):
    args = training_args(tmp_path, per_device_train_batch_size=16, gradient_accumulation_steps=4, max_grad_norm=2.0)
    applied = apply_recipe(args, PRETRAINING_RECIPES["vit-micro"], explicit={"output_dir", "max_grad_norm"})
    assert args.learning_rate == pytest.approx(1.6e-2 * 64 / 512) and applied["learning_rate"] == args.learning_rate
    assert args.max_grad_norm == 2.0 and "max_grad_norm" not in applied
    assert args.lr_scheduler_type == "cosine_with_min_lr" and args.lr_scheduler_kwargs == {"min_lr_rate": 0.01}
    assert args.warmup_steps == 0.05
    explicit = training_args(tmp_path, learning_rate=1e-3)
    apply_recipe(explicit, PRETRAINING_RECIPES["vit-base"], explicit={"output_dir", "learning_rate"})
    assert explicit.learning_rate == 1e-3 and explicit.max_grad_norm == 5.0


def test_an_explicit_scheduler_gets_no_recipe_scheduler_kwargs(tmp_path):
    args = training_args(tmp_path, lr_scheduler_type="cosine")
    applied = apply_recipe(args, PRETRAINING_RECIPES["resnet-50"], explicit={"output_dir", "lr_scheduler_type"})
    assert "lr_scheduler_kwargs" not in applied and args.lr_scheduler_kwargs in ({}, None)
    assert args.lr_scheduler_type == "cosine"
    default = training_args(tmp_path)
    apply_recipe(default, PRETRAINING_RECIPES["resnet-50"], explicit={"output_dir"})
    assert default.lr_scheduler_type == "cosine_with_min_lr"
    assert default.lr_scheduler_kwargs == {"min_lr_rate": pytest.approx(1e-5 / 1.2e-3)}


def test_cnn_recipes_train_mask_token_and_gamma_slower_without_decay():
    model = A2MIMForMaskedImageModeling(tiny_resnet_config())
    recipe = PRETRAINING_RECIPES["resnet-50"]
    groups = build_parameter_groups(model, 1e-3, 0.05, mask_token_lr_multiplier(recipe.mask_token_lr_multiplier),
                                    recipe.no_weight_decay)
    by_name = {name: group for group in groups for name in group["param_names"]}
    for name in ("a2mim.mask_token", "a2mim.mask_gamma"):
        assert by_name[name]["lr"] == pytest.approx(1e-4) and by_name[name]["weight_decay"] == 0.0
    assert recipe.no_weight_decay == RESNET_NO_DECAY


def test_finetuning_recipe_goes_through_the_same_rule_and_keeps_its_reference_batch(tmp_path):
    args = training_args(tmp_path, per_device_train_batch_size=32, gradient_accumulation_steps=2)
    recipe = resolve_recipe(RecipeArguments(recipe="resnet-50-in100-ft"), args, {"output_dir"})
    assert args.learning_rate == pytest.approx(5e-3 * 64 / 2048)  # AdamW: linear from batch 2048
    assert (recipe.learning_rate, recipe.reference_batch_size) == (5e-3, 2048)  # what the model card shows
    assert args.num_train_epochs == 100 and args.warmup_steps == pytest.approx(0.2) and args.lr_scheduler_type == "cosine"
    unscaled = training_args(tmp_path)
    resolve_recipe(RecipeArguments(recipe="vit-small-ft", scale_learning_rate=False), unscaled, {"output_dir"})
    assert unscaled.learning_rate == 1e-2 and unscaled.max_grad_norm == 5.0
    assert PLAIN.reference_batch_size is None and PLAIN.scaled_learning_rate(4096) == PLAIN.learning_rate


@pytest.mark.parametrize("name, layer_decay, ema", [("vit-small-ft", 0.55, None), ("vit-large-ft", 0.65, 0.99996),
                                                    ("deit-small-in100-ft", 0.65, None)])
def test_the_vit_rows_fine_tuning_protocols(name, layer_decay, ema):
    recipe = RECIPES[name]
    assert (recipe.layer_decay, recipe.ema_decay, recipe.max_grad_norm) == (layer_decay, ema, 5.0)
    assert recipe.auto_augment == "rand-m9-mstd0.5-inc1" and recipe.random_erasing_mode == "pixel"


def test_convnext_fine_tuning_is_rsb_a2_style():
    convnext, rsb_a2 = RECIPES["convnext-rsb-a2"], RECIPES["rsb-a2"]
    assert (convnext.optimizer, convnext.loss, convnext.num_train_epochs) == ("lamb", "bce", 300)
    assert (convnext.learning_rate, convnext.reference_batch_size) == (rsb_a2.learning_rate, 2048)


def test_finetuning_model_card_shows_the_reference_batch_and_the_learning_rate_used(tmp_path):
    from types import SimpleNamespace

    import run_finetuning

    args = training_args(tmp_path, per_device_train_batch_size=8)
    recipe = resolve_recipe(RecipeArguments(recipe="rsb-a3"), args, {"output_dir", "per_device_train_batch_size"})
    plain = resolve_recipe(RecipeArguments(), training_args(tmp_path), {"output_dir"})
    for effective, reference in ((recipe, "| reference_batch_size | 2048 |"), (plain, None)):
        run_finetuning.write_finetuning_card(
            args, SimpleNamespace(source_description="data", train_samples_per_class=None, dataset_name=None),
            SimpleNamespace(model_name_or_path="./a2mim", model_preset=None), effective, {}, "ResNetForImageClassification",
            "./a2mim/preprocessor_config.json",
        )
        card = (tmp_path / "README.md").read_text()
        assert "reference_batch_size | 0" not in card and "reference_batch_size | None" not in card
        assert reference is None or reference in card
    assert f"| learning rate used | {args.learning_rate:.4g} |" in card
    assert "| image statistics | ./a2mim/preprocessor_config.json |" in card


def test_a_bad_recipe_knob_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError, match=r"^--random_erasing_mode 'zeros' is not one of pixel, rand, const\.$"):
        resolve_recipe(RecipeArguments(recipe="beit-ft", random_erasing_mode="zeros"), training_args(tmp_path), set())
    with pytest.raises(ValueError, match=r"^--loss 'mse' is not one of cross_entropy, bce\.$"):
        resolve_recipe(RecipeArguments(loss="mse"), training_args(tmp_path), set())
