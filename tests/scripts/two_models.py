"""Two models (v1 models=[...]): each by Model.get_model_path, AZUREML_MODEL_DIR holds both."""

import os

from azureml.core.model import Model

state = {}


def init():
    for name in ("clf", "labels"):
        path = Model.get_model_path(name)
        target = os.path.join(path, "weights.txt") if os.path.isdir(path) else path
        with open(target, encoding="utf-8") as f:
            state[name] = f.read().strip()
    state["dir"] = sorted(os.listdir(os.environ["AZUREML_MODEL_DIR"]))


def run(mini_batch):
    return [f"{os.path.basename(p)} clf={state['clf']} labels={state['labels']} "
            f"dir={','.join(state['dir'])}" for p in mini_batch]
