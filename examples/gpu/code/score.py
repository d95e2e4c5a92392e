"""Azure ML scoring script: classify 8x8 digit images with an ONNX model, on the GPU when
there is one.

ONNX Runtime runs the model with CUDA where the CUDA provider is installed and a GPU is
visible (the GPU scorer image, with onnxruntime-gpu), and on the CPU everywhere else: the
same script scores on a laptop and on a serverless GPU. `--device cuda` refuses to start
without CUDA (a GPU job that silently ran on the CPU would cost hours); `--device cpu`
never uses it.

Each input file holds one image as 64 comma-separated pixel values (0-16) on one line.
`run()` returns one line per file: "<file name> <predicted digit>".
"""

import argparse
import logging
import os

import numpy as np
import onnxruntime as ort

logger = logging.getLogger(__name__)

session = None


def providers_for(device, available):
    """The execution providers to ask for, best first, for `device` (auto, cuda or cpu)."""
    cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not cuda:
        raise RuntimeError(
            "--device cuda: ONNX Runtime has no CUDA provider here (providers: "
            f"{', '.join(available)}); install onnxruntime-gpu in the image and run on a GPU "
            "replica, or use --device auto")
    if device == "cpu" or not cuda:
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def init():
    """Load the model once per worker, on the device `--device` asks for."""
    global session

    parser = argparse.ArgumentParser()
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    args, _ = parser.parse_known_args()  # Azure ML adds arguments of its own

    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.onnx")
    session = ort.InferenceSession(
        path, providers=providers_for(args.device, ort.get_available_providers()))
    used = session.get_providers()[0]
    if args.device == "cuda" and used != "CUDAExecutionProvider":
        raise RuntimeError(f"--device cuda: the CUDA provider did not load (running on {used}); "
                           "see ONNX Runtime's log above for the missing CUDA library")
    logger.info("Loaded %s on %s", path, used)


def run(mini_batch):
    """Predict the digit of each file in the mini-batch, in one call to the model."""
    if not mini_batch:
        return []
    images = np.vstack([np.loadtxt(path, delimiter=",", ndmin=2) for path in mini_batch])
    (probabilities,) = session.run(None, {"images": images.astype(np.float32)})
    digits = probabilities.argmax(axis=1)
    return [f"{os.path.basename(path)} {int(digit)}"
            for path, digit in zip(mini_batch, digits, strict=True)]
