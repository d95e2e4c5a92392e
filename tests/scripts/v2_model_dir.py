"""A v2 batch deployment script as Azure ML documents it: the model registered from a
folder named "model" is $AZUREML_MODEL_DIR/model."""

import os

state = {}


def init():
    model_path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model")
    with open(os.path.join(model_path, "weights.txt"), encoding="utf-8") as f:
        state["weights"] = f.read().strip()


def run(mini_batch):
    return [f"{os.path.basename(p)} weights={state['weights']}" for p in mini_batch]
