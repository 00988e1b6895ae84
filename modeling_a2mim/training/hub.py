"""Pushing a finished output folder to the Hugging Face Hub: exactly the model files, card and picture.

`check_hub_access` runs before training, so that a run never trains for hours and then fails to upload for a
reason known at the start; a late upload failure leaves the output folder complete and says how to upload it.
"""

import logging
import os

from huggingface_hub import CommitOperationAdd, HfApi, get_token

logger = logging.getLogger(__name__)

# Top-level files of an output folder that belong in the Hub repository (checkpoints and logs stay local).
HUB_FILES = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "preprocessor_config.json",
    "README.md",
    "reconstructions.png",
    "detections.png",
    "segmentations.png",
    "all_results.json",
    "train_results.json",
    "eval_results.json",
)


def files_to_push(output_dir: str) -> list[str]:
    """The files of `output_dir` that `push_output_dir` uploads, sorted: `HUB_FILES`, sharded weights, and the
    model code `save_pretrained` copies next to `config.json` (its `auto_map` names it), without which
    `from_pretrained(repo, trust_remote_code=True)` cannot load the model."""
    names = set(os.listdir(output_dir))
    shards = {n for n in names if n.startswith("model-") and n.endswith(".safetensors")}
    code = {n for n in names if n.endswith(".py")}
    return sorted((names & set(HUB_FILES)) | shards | code)


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"


def check_hub_access(repo_id: str | None, token: str | None = None, private: bool | None = None,
                     api: HfApi | None = None) -> None:
    """Before training with `--push_to_hub`: the Hub id is given, a token is available, the Hub answers
    `whoami` and `repo_id` exists or can be created. Raises `ValueError` with one line saying what to do."""
    if not repo_id:
        raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-name/a2mim-vit-base).")
    token = token or get_token()
    if token is None:
        raise ValueError("--push_to_hub needs a Hugging Face token with write access: run `hf auth login`, set "
                         "HF_TOKEN or pass --hub_token (or drop --push_to_hub).")
    api = api or HfApi(token=token)
    try:
        user = api.whoami()
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    except Exception as error:  # huggingface_hub's auth, HTTP and offline errors, and its HTTP client's
        raise ValueError(
            f"--push_to_hub cannot use the Hub repository {repo_id} ({_first_line(error)}); check the network, "
            "HF_HUB_OFFLINE, the token's write access and --hub_model_id, or drop --push_to_hub."
        ) from error
    if isinstance(user, dict) and user.get("name"):
        logger.info("Will push to %s as %s at the end.", repo_id, user["name"])


def push_output_dir(output_dir: str, repo_id: str, token: str | None = None, private: bool | None = None,
                    commit_message: str = "A2MIM pretraining", api: HfApi | None = None) -> list[str]:
    """Create `repo_id` if needed and upload `files_to_push(output_dir)` in one commit; returns the file names.

    An upload failure is a `ValueError` that says the folder is complete and how to upload it later.
    """
    api = api or HfApi(token=token)
    files = files_to_push(output_dir)
    if "model.safetensors" not in files and not any(f.startswith("model-") for f in files):
        raise FileNotFoundError(f"No model weights in {output_dir}; nothing to push.")
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=os.path.join(output_dir, name))
                  for name in files]
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.create_commit(repo_id, operations=operations, commit_message=commit_message, repo_type="model")
    except Exception as error:  # huggingface_hub's auth, HTTP and offline errors, and its HTTP client's
        upload = f"hf upload {repo_id} {output_dir} " + " ".join(f"--include {name}" for name in files)
        raise ValueError(
            f"Uploading to {repo_id} failed ({_first_line(error)}); the output in {output_dir} is complete. Upload "
            f"it later with: {upload}"
        ) from error
    return files
