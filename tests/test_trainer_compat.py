"""`A2MIMTrainer` uses transformers' `Trainer` through its public hooks, except for the two private methods that
`modeling_a2mim/training/trainer_compat.py` overrides (see its docstring for why no public hook does their job).

These tests run on every transformers version `.ci/run` checks (the newest and the oldest of setup.py's range): the
installed version lies in the range, Trainer still defines and calls both methods with the signatures
`TrainerCompat` overrides, no other private method is overridden, the override for the weights fixes what Trainer's own
resume gets wrong, and the step schedule (public `create_scheduler`) is rebuilt by every `train()` call.
"""

import inspect
import re
from pathlib import Path

import PIL.Image
import pytest
import safetensors.torch
import torch
import transformers
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from transformers import Trainer, TrainerCallback, TrainingArguments

from modeling_a2mim import A2MIMForMaskedImageModeling
from modeling_a2mim.data.collator import MaskingCollator
from modeling_a2mim.training.trainer import A2MIMTrainer
from modeling_a2mim.training.trainer_compat import TrainerCompat
from tests.helpers import tiny_resnet_config, tiny_vit_config

SETUP = Path(__file__).resolve().parents[1] / "setup.py"
WHAT_TO_DO = ("TrainerCompat (modeling_a2mim/training/trainer_compat.py) overrides this private Trainer method: port "
              "the override to this transformers version, run tests/test_trainer_compat.py and the resume tests "
              "(tests/test_run_faults.py), then widen the range in setup.py.")


def test_installed_transformers_is_in_the_supported_range():
    supported = re.search(r'"transformers([^"]+)"', SETUP.read_text()).group(1)
    assert Version(transformers.__version__) in SpecifierSet(supported), (
        f"transformers {transformers.__version__} is outside setup.py's supported range {supported}. {WHAT_TO_DO}"
    )


def test_trainer_still_defines_and_calls_the_private_methods_trainer_compat_overrides():
    expected = {
        "_init_training_state": ["self", "max_steps", "num_update_steps_per_epoch", "num_train_epochs",
                                 "resume_from_checkpoint", "trial"],
        "_load_from_checkpoint": ["self", "resume_from_checkpoint", "model"],
    }
    trainer_source = inspect.getsource(Trainer)
    for name, parameters in expected.items():
        assert hasattr(Trainer, name), f"transformers {transformers.__version__}: Trainer.{name} is gone. {WHAT_TO_DO}"
        found = list(inspect.signature(getattr(Trainer, name)).parameters)
        assert found == parameters, (
            f"transformers {transformers.__version__}: Trainer.{name}{tuple(found)} has a new signature. {WHAT_TO_DO}"
        )
        assert f"self.{name}(" in trainer_source, (
            f"transformers {transformers.__version__}: Trainer no longer calls {name}. {WHAT_TO_DO}"
        )
    overridden = {name for name in vars(TrainerCompat) if name.startswith("_") and hasattr(Trainer, name)}
    assert overridden - {"__doc__", "__module__", "__qualname__"} == set(expected)
    # A2MIMTrainer itself overrides public methods only.
    private = {name for name in vars(A2MIMTrainer) if name.startswith("_") and not name.startswith("__")}
    assert private == set(), private


def test_trainer_s_own_resume_leaves_renamed_weights_at_init_and_trainer_compat_loads_them(tmp_path):
    torch.manual_seed(0)
    trained = A2MIMForMaskedImageModeling(tiny_vit_config())
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(torch.randn_like(parameter))  # every weight, BEiT's layer scale lambda_1/2 included
    trained.save_pretrained(tmp_path / "checkpoint")
    saved_names = set(safetensors.torch.load_file(tmp_path / "checkpoint" / "model.safetensors"))
    renamed = set(trained.state_dict()) - saved_names  # names save_pretrained writes under their original names
    args = TrainingArguments(str(tmp_path / "run"), use_cpu=True, report_to="none")

    def resumed_by(trainer_class) -> dict[str, torch.Tensor]:
        torch.manual_seed(1)
        model = A2MIMForMaskedImageModeling(tiny_vit_config())
        trainer_class(model=model, args=args)._load_from_checkpoint(str(tmp_path / "checkpoint"))
        return model.state_dict()

    stock = resumed_by(Trainer)
    assert all(not torch.equal(stock[name], trained.state_dict()[name]) for name in renamed), (
        f"transformers {transformers.__version__}'s Trainer now resumes the renamed weights itself: "
        "TrainerCompat._load_from_checkpoint may go"
    )
    if Version(transformers.__version__) >= Version("5.24"):  # the BEiT rename that made the override necessary
        assert any(name.endswith("lambda_1") for name in renamed)
    compat = resumed_by(A2MIMTrainer)
    assert all(torch.equal(compat[name], value) for name, value in trained.state_dict().items())


class LearningRates(TrainerCallback):
    def __init__(self):
        self.seen = []

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.seen.append(optimizer.param_groups[0]["lr"])


def test_the_step_schedule_is_rebuilt_by_every_train_call(tmp_path):
    model = A2MIMForMaskedImageModeling(tiny_resnet_config())
    images = [PIL.Image.new("RGB", (64, 64), (i, 2 * i, 3 * i)) for i in range(8)]
    dataset = [{"image": image} for image in images]
    args = TrainingArguments(str(tmp_path), use_cpu=True, report_to="none", learning_rate=1e-3, warmup_steps=0,
                             max_steps=4, per_device_train_batch_size=2, save_strategy="no",
                             remove_unused_columns=False)
    learning_rates = LearningRates()
    trainer = A2MIMTrainer(model=model, args=args, train_dataset=dataset, step_decay_at=0.5,
                           callbacks=[learning_rates], data_collator=MaskingCollator.from_config(model.config))
    trainer.train()
    trainer.args.max_steps = 8
    trainer.train()
    assert learning_rates.seen == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4] + [1e-3] * 4 + [1e-4] * 4)
