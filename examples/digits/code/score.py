"""Azure ML scoring script: classify 8x8 handwritten digit images.

Each input file holds one image as 64 comma-separated pixel values (0-16) on one line.
`run()` returns one line per file, "<file name> <predicted digit> <probability>", for the
files whose top class probability reaches `--confidence`.
"""

import argparse
import logging
import os

import joblib
import numpy as np

logger = logging.getLogger(__name__)

model = None
confidence = 0.0


def init():
    """Load the model once per worker and read the script arguments."""
    global model, confidence

    parser = argparse.ArgumentParser()
    parser.add_argument("--confidence", type=float, default=0.0)
    # Azure ML adds its own arguments to sys.argv; keep only ours.
    args, _ = parser.parse_known_args()
    confidence = args.confidence

    # As in Azure ML: the model folder (registered from a folder named "model") keeps its
    # name under AZUREML_MODEL_DIR.
    model_path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.joblib")
    model = joblib.load(model_path)
    logger.info("Loaded model %s (confidence >= %.2f)", model_path, confidence)


def run(mini_batch):
    """Predict the digit of each file in the mini-batch."""
    if not mini_batch:
        return []

    images = np.vstack([np.loadtxt(path, delimiter=",", ndmin=2) for path in mini_batch])
    probabilities = model.predict_proba(images)
    best = probabilities.argmax(axis=1)

    results = []
    for path, index, row in zip(mini_batch, best, probabilities, strict=True):
        probability = row[index]
        if probability >= confidence:
            digit = int(model.classes_[index])
            results.append(f"{os.path.basename(path)} {digit} {probability:.4f}")

    logger.info("Scored %d files, returned %d", len(mini_batch), len(results))
    return results
