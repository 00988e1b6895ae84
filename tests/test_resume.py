"""Resuming: an extended run continues on its new schedule from the first resumed step, both scripts say where they
resume from, a folder whose every checkpoint is broken is an error unless the user asks to start over, and an
eval-only run says which loss its eval_loss is."""

import json
import logging
import sys
from unittest import mock

import pytest
from transformers import TrainerCallback

import run_finetuning
import run_pretraining
from modeling_a2mim.training.checkpoints import resolve_resume_checkpoint

FINETUNE = ["--model_preset", "vit-micro", "--do_train", "--per_device_train_batch_size", "8", "--max_train_samples",
            "32", "--learning_rate", "1e-3", "--warmup_steps", "0", "--save_steps", "2", "--use_cpu", "--report_to",
            "none", "--dataloader_num_workers", "0", "--seed", "0"]


class LearningRates(TrainerCallback):
    """`{global step: learning rate of the optimizer's first group}` at the start of every step."""

    def __init__(self):
        self.at_step = {}

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.at_step[state.global_step] = optimizer.param_groups[0]["lr"]


def finetune(output_dir, *args) -> dict[int, float]:
    learning_rates = LearningRates()
    with mock.patch.object(sys, "argv", ["run_finetuning.py", "--output_dir", str(output_dir), *FINETUNE, *args]):
        run_finetuning.main(callbacks=[learning_rates])
    return learning_rates.at_step


def test_extending_a_finished_run_trains_on_the_new_schedule_from_the_first_resumed_step(tmp_path, caplog):
    uninterrupted = finetune(tmp_path / "uninterrupted", "--max_steps", "4")
    finished = finetune(tmp_path / "extended", "--max_steps", "2")  # cosine over 2 steps: it ends at 0
    assert finished == pytest.approx({0: 1e-3, 1: 5e-4})
    with caplog.at_level(logging.WARNING):
        extended = finetune(tmp_path / "extended", "--max_steps", "4")
    assert f"Resuming from {tmp_path / 'extended' / 'checkpoint-2'}" in caplog.text
    assert "Resumed at step 2 of a 4-step schedule: learning rate 0.0005 from this step on (the checkpoint's " \
           "schedule had reached 0)." in caplog.text
    assert extended == pytest.approx({2: uninterrupted[2], 3: uninterrupted[3]})
    assert json.loads((tmp_path / "extended" / "trainer_state.json").read_text())["global_step"] == 4


def test_eval_only_results_say_which_loss_eval_loss_is(tmp_path):
    finetune(tmp_path / "trained", "--max_steps", "1", "--save_strategy", "no")
    with mock.patch.object(sys, "argv", ["run_finetuning.py", "--model_name_or_path", str(tmp_path / "trained"),
                                         "--output_dir", str(tmp_path / "eval"), "--do_eval", "--max_eval_samples",
                                         "16", "--loss", "bce", "--use_cpu", "--report_to", "none"]):
        run_finetuning.main()
    results = json.loads((tmp_path / "eval" / "eval_results.json").read_text())
    assert results["eval_loss_function"] == "bce (label smoothing 0.0)" and "eval_loss" in results


def broken_checkpoints(output_dir, *steps):
    for step in steps:
        (output_dir / f"checkpoint-{step}").mkdir(parents=True)
        (output_dir / f"checkpoint-{step}" / "trainer_state.json").write_text("{")  # cut by a kill


def test_every_checkpoint_broken_is_an_error_unless_starting_over(tmp_path):
    broken_checkpoints(tmp_path, 2, 4)
    message = (f"Every checkpoint in {tmp_path} is incomplete (checkpoint-4: trainer_state.json is not valid JSON; "
               "checkpoint-2: trainer_state.json is not valid JSON): pass --resume_from_checkpoint with a complete checkpoint folder, or "
               "--resume_from_checkpoint none to start over.")
    for request in (None, "last"):
        with pytest.raises(ValueError) as error:
            resolve_resume_checkpoint(request, str(tmp_path))
        assert str(error.value) == message
    assert resolve_resume_checkpoint("none", str(tmp_path)) is None
    assert resolve_resume_checkpoint(None, str(tmp_path / "empty")) is None


def test_pretraining_refuses_a_folder_of_broken_checkpoints_and_starts_over_when_asked(tmp_path, capsys):
    out = tmp_path / "out"
    broken_checkpoints(out, 3)
    args = ["--output_dir", str(out), "--model_preset", "vit-micro", "--max_steps", "1", "--max_train_samples", "8",
            "--per_device_train_batch_size", "4", "--use_cpu", "--report_to", "none", "--save_strategy", "no",
            "--dataloader_num_workers", "0"]
    with pytest.raises(ValueError, match=r"Every checkpoint in .* is incomplete .*--resume_from_checkpoint none"):
        run_pretraining.main(args)
    assert run_pretraining.main([*args, "--resume_from_checkpoint", "none"])["final_loss"] > 0
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1
