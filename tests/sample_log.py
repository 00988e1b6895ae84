"""Test-only: record which samples each rank trained on at each optimizer step of `run_pretraining.py`.

`install(folder)` patches the script's module so that the training collator keeps each example's `id` column as
`sample_ids` and the Trainer appends `global_step id...` lines to `<folder>/rank<k>.txt` (popping `sample_ids` before
the model sees the batch). Run as a script (`python tests/sample_log.py FOLDER ARGS...`, also under torchrun) it does
this and then runs `run_pretraining.py ARGS...`.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import run_pretraining  # noqa: E402
from modeling_a2mim.data.collator import MaskingCollator  # noqa: E402
from modeling_a2mim.training.trainer import A2MIMTrainer  # noqa: E402


def install(folder, patch=setattr) -> None:
    """Make `run_pretraining.main` log the sample ids of every training batch into `folder`. `patch(module, name,
    value)` replaces the script's classes (pytest's `monkeypatch.setattr` undoes it after the test)."""

    class IdKeepingCollator(MaskingCollator):
        @classmethod
        def from_config(cls, config, *args, train: bool = True, **kwargs):
            if train:
                kwargs["extra_columns"] = {"id": "sample_ids"}
            return super().from_config(config, *args, train=train, **kwargs)

    class SampleLoggingTrainer(A2MIMTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            sample_ids = inputs.pop("sample_ids", None)
            if sample_ids is not None and model.training:
                os.makedirs(folder, exist_ok=True)
                with open(os.path.join(folder, f"rank{self.args.process_index}.txt"), "a") as handle:
                    handle.write(f"{self.state.global_step} {' '.join(str(i) for i in sample_ids.tolist())}\n")
            return super().compute_loss(model, inputs, *args, **kwargs)

    patch(run_pretraining, "MaskingCollator", IdKeepingCollator)
    patch(run_pretraining, "A2MIMTrainer", SampleLoggingTrainer)


def read(folder: Path) -> dict[int, dict[int, list[int]]]:
    """`{rank: {global_step: [sample ids]}}` from the files `install` wrote."""
    logged = {}
    for path in sorted(Path(folder).glob("rank*.txt")):
        rank = int(path.stem[4:])
        for line in path.read_text().splitlines():
            step, *ids = map(int, line.split())
            logged.setdefault(rank, {})[step] = ids
    return logged


if __name__ == "__main__":
    install(sys.argv[1])
    sys.argv = [str(ROOT / "run_pretraining.py"), *sys.argv[2:]]
    from modeling_a2mim.training.cli import run_main

    run_main(run_pretraining.main, "run_pretraining.py")
