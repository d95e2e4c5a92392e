"""A v1 ParallelRunStep script as Azure ML documents it: azureml.core's Model and Run in
init() (model path, a Key Vault secret, a metric and a tag), Run.log in run()."""

import os

from azureml.core import Model, Run

state = {}


def init():
    model_path = Model.get_model_path("digits-clf")
    with open(os.path.join(model_path, "weights.txt"), encoding="utf-8") as f:
        state["weights"] = f.read().strip()
    state["model_path"] = model_path
    context = Run.get_context()
    keyvault = context.experiment.workspace.get_default_keyvault()
    state["key_ok"] = keyvault.get_secret("cog-key") == "s3cret"
    context.log("init_pid", os.getpid())
    context.tag("model", "digits-clf")


def run(mini_batch):
    context = Run.get_context()
    context.log("mini_batch_items", len(mini_batch))
    context.parent.log("items_scored", len(mini_batch))
    model = os.path.relpath(state["model_path"], os.environ["AZUREML_MODEL_DIR"])
    return [f"{os.path.basename(p)} weights={state['weights']} key_ok={state['key_ok']} "
            f"model={model} datasets={sorted(context.input_datasets)}" for p in mini_batch]
