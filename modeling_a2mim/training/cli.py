"""Script plumbing: parsing arguments (flags or a JSON/YAML file) and ending bad input with one clear line."""

import json
import os
import sys
from pathlib import Path

import torch
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


def parse_script_arguments(dataclass_types, argv: list[str] | None = None) -> tuple:
    """`(*dataclasses, given)`: the parsed argument dataclasses from flags, or from one `.json`/`.yaml` file, and
    the set of argument names the user gave explicitly (so that recipe defaults never override them)."""
    argv = sys.argv[1:] if argv is None else argv
    parser = HfArgumentParser(dataclass_types)
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        text = Path(argv[0]).read_text(encoding="utf-8")
        if argv[0].endswith(".json"):
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text)
        return (*parser.parse_dict(values), set(values))
    parsed = parser.parse_args_into_dataclasses(args=argv)
    given = {arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--")}
    return (*parsed, given)
