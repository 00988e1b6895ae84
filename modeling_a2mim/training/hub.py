"""Pushing a finished output folder to the Hugging Face Hub: exactly the model files, card and picture."""

import os

from huggingface_hub import CommitOperationAdd, HfApi

# Top-level files of an output folder that belong in the Hub repository (checkpoints and logs stay local).
HUB_FILES = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "preprocessor_config.json",
    "README.md",
    "reconstructions.png",
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


def push_output_dir(output_dir: str, repo_id: str, token: str | None = None, private: bool | None = None,
                    commit_message: str = "A2MIM pretraining", api: HfApi | None = None) -> list[str]:
    """Create `repo_id` if needed and upload `files_to_push(output_dir)` in one commit; returns the file names."""
    api = api or HfApi(token=token)
    files = files_to_push(output_dir)
    if "model.safetensors" not in files and not any(f.startswith("model-") for f in files):
        raise FileNotFoundError(f"No model weights in {output_dir}; nothing to push.")
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=os.path.join(output_dir, name))
                  for name in files]
    api.create_commit(repo_id, operations=operations, commit_message=commit_message, repo_type="model")
    return files
