"""Reading the checkpoint a script is pointed at (`--model_name_or_path`): what users get wrong becomes one clear
`ValueError` / `FileNotFoundError` naming the path and the fix, before or while transformers reads it.

`check_model_source` looks at a local path before transformers does (transformers answers a mistyped local path with
"Repo id must be in the form ..."); `reading_checkpoint` wraps the load calls, turning the errors transformers and
safetensors raise for an unreadable checkpoint (`OSError`, `SafetensorError`) into a one-line `ValueError`. Anything
else keeps its traceback: it is a bug, not bad input.
"""

import json
import os
from contextlib import contextmanager

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError
from transformers import AutoConfig
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

WEIGHTS_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)


def _looks_local(path: str) -> bool:
    """Whether `path` can only mean a folder on this machine: not a Hub id (`name` or `namespace/name`), or a
    `namespace/name` whose `namespace` is a local folder."""
    try:
        validate_repo_id(path)
    except HFValidationError:
        return True
    return "/" in path and os.path.isdir(path.split("/", 1)[0])


def check_model_folder(path: str, flag: str = "--model_name_or_path") -> None:
    """`ValueError` unless the folder `path` holds a readable `config.json` and weights."""
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise ValueError(f"{flag} {path} has no config.json, so it is not a saved model: point it at a folder written "
                         "by save_pretrained (a run's --output_dir or one of its checkpoint-N folders).")
    try:
        with open(config_file, encoding="utf-8") as file:
            json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_file} is not valid JSON ({error}): the file is damaged; restore it or save the "
                         "model again.") from error
    if not any(os.path.isfile(os.path.join(path, name)) for name in WEIGHTS_FILES):
        raise ValueError(f"{flag} {path} has a config.json but no weights ({SAFE_WEIGHTS_NAME}): the save was cut "
                         "short or the weights were not copied; point it at a complete checkpoint.")


def check_model_source(path: str, flag: str = "--model_name_or_path") -> None:
    """Check a local `path` before transformers reads it: `FileNotFoundError` for a folder that does not exist,
    `ValueError` for a file or an incomplete folder (`check_model_folder`). Hub ids pass unchecked."""
    if os.path.isdir(path):
        check_model_folder(path, flag)
    elif os.path.exists(path):
        raise ValueError(f"{flag} {path} is a file; give the folder that holds its config.json and weights.")
    elif _looks_local(path):
        raise FileNotFoundError(f"{flag} {path}: no such folder (and it is not a Hub model id); check the path.")


@contextmanager
def reading_checkpoint(path: str, flag: str = "--model_name_or_path"):
    """Turn the errors of loading the checkpoint `path` into one-line `ValueError`s naming it: unreadable weights
    (`SafetensorError`: truncated or damaged file) and transformers' `OSError`s (missing files, a Hub id that
    cannot be reached or does not exist)."""
    try:
        yield
    except SafetensorError as error:
        raise ValueError(f"{flag} {path}: the weights cannot be read ({error}); the file is truncated or damaged, "
                         "so save or download the checkpoint again.") from error
    except OSError as error:
        reason = " ".join(str(error).split())
        raise ValueError(f"{flag} {path} cannot be loaded: {reason}") from error


def load_model_config(path: str, flag: str = "--model_name_or_path", **hub_kwargs):
    """`AutoConfig.from_pretrained(path)` after `check_model_source`, its errors as one line (`reading_checkpoint`)."""
    check_model_source(path, flag)
    with reading_checkpoint(path, flag):
        return AutoConfig.from_pretrained(path, **hub_kwargs)
