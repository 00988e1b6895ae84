"""Script plumbing: parsing arguments (flags, after an optional JSON/YAML file) and ending bad input with one
clear line."""

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

import datasets
import torch
import transformers
from transformers import HfArgumentParser


def run_main(main, script_name: str) -> None:
    """Call `main()`; a `ValueError`/`FileNotFoundError` (the scripts' bad-input errors) exits with
    `"<script_name>: error: <message>"`. Set `A2MIM_TRACEBACK=1` to get the full traceback instead. After a
    multi-process run, all ranks meet and the process group is closed."""
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        if os.environ.get("A2MIM_TRACEBACK"):
            raise
        sys.exit(f"{script_name}: error: {error}")
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Every rank waits for rank 0's final saves, then the process group closes before the interpreter exits
        # (a rank exiting with live gloo threads aborts with "terminate called without an active exception").
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def setup_logging(training_args, script_logger: logging.Logger) -> None:
    """Log to stdout at the process's log level (`--log_level`, `--log_level_replica`) for the script's logger, this
    package, `datasets` and `transformers`."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    for library_logger in (script_logger, logging.getLogger("modeling_a2mim")):
        library_logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)


def flags_from_file(path: str) -> list[str]:
    """The command-line flags a `.json` / `.yaml` arguments file stands for: `{"max_steps": 5, "data_files": [a, b],
    "streaming": true}` -> `["--max_steps", "5", "--data_files", "a", "b", "--streaming", "true"]` (dicts as JSON,
    `null` values left out). Flags after the file then override it, as later flags override earlier ones."""
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".json"):
        values = json.loads(text)
    else:
        import yaml

        values = yaml.safe_load(text)
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of argument names to values, e.g. 'max_steps: 5'.")
    flags = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, dict):
            value = json.dumps(value)
        flags += [f"--{name}", *map(str, value if isinstance(value, (list, tuple)) else [value])]
    return flags


def _field_names_by_flag(dataclass_types) -> dict[str, str]:
    """`{flag without dashes: field name}` for every field's name, its dashed and `no_` spellings and `aliases`."""
    names = {}
    for dataclass_type in dataclass_types:
        for field in dataclasses.fields(dataclass_type):
            aliases = field.metadata.get("aliases", [])
            for flag in (field.name, field.name.replace("_", "-"), f"no_{field.name}",
                         *([aliases] if isinstance(aliases, str) else aliases)):
                names[flag.lstrip("-")] = field.name
    return names


def parse_script_arguments(dataclass_types, argv: list[str] | None = None) -> tuple:
    """`(*dataclasses, given)`: the parsed argument dataclasses and the set of field names the user gave explicitly
    (so that recipe defaults never override them). The arguments are flags, optionally after one `.json`/`.yaml`
    file (`args.yaml --max_steps 5`): the file's values first, flags after it override them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith((".json", ".yaml", ".yml")):
        argv = flags_from_file(argv[0]) + argv[1:]
    parsed = HfArgumentParser(dataclass_types).parse_args_into_dataclasses(args=argv)
    names = _field_names_by_flag(dataclass_types)
    flags = (arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--"))
    return (*parsed, {names.get(flag, flag) for flag in flags})
