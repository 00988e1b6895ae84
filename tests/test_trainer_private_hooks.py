"""`A2MIMTrainer` relies on three private parts of transformers' `Trainer` that no public hook replaces:

- `_init_training_state`: a streamed (length-less) training set resumes at its pass and batch (Trainer would skip
  `global_step` batches of pass 0);
- `_load_from_checkpoint`: resumed weights go through `from_pretrained`, which applies transformers' key renames;
- `_created_lr_scheduler`: the step schedule is rebuilt on the next `train()` call, as Trainer's own schedulers are.

(The skipped-image count reaches the loggers through the public `Trainer.log`, the sample ids of the multi-process
tests through a test-only collator and Trainer in `tests/sample_log.py`.) `setup.py` pins transformers to the versions
these were checked on; this test fails loudly when the installed version lies outside that range or moved a hook.
"""

import inspect
import re
from pathlib import Path

import transformers
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from transformers import Trainer

from modeling_a2mim.training.trainer import A2MIMTrainer

SETUP = Path(__file__).resolve().parents[1] / "setup.py"
WHAT_TO_DO = ("A2MIMTrainer (modeling_a2mim/training/trainer.py) overrides this private Trainer part: port the "
              "override to this transformers version, run the resume tests, then widen the range in setup.py.")


def test_installed_transformers_is_in_the_tested_range():
    pinned = re.search(r'"transformers([^"]+)"', SETUP.read_text()).group(1)
    assert Version(transformers.__version__) in SpecifierSet(pinned), (
        f"transformers {transformers.__version__} is outside setup.py's tested range {pinned}. {WHAT_TO_DO}"
    )


def test_the_private_trainer_hooks_a2mim_overrides_are_where_they_were():
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
            f"transformers {transformers.__version__}: Trainer.{name}{tuple(found)} changed its signature. {WHAT_TO_DO}"
        )
        assert f"self.{name}(" in trainer_source, (
            f"transformers {transformers.__version__}: Trainer no longer calls {name}. {WHAT_TO_DO}"
        )
        assert name in vars(A2MIMTrainer)
    assert "if self._created_lr_scheduler:" in trainer_source, (
        f"transformers {transformers.__version__}: Trainer no longer resets its scheduler through "
        f"_created_lr_scheduler. {WHAT_TO_DO}"
    )
    assert "self._created_lr_scheduler = True" in inspect.getsource(A2MIMTrainer.create_scheduler)
