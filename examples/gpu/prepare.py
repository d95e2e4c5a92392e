"""Prepare the GPU example: an ONNX digits model, input files and the expected results.

    python examples/gpu/prepare.py [--count N] [--out DIR]

Trains a small neural network (scikit-learn's MLPClassifier) on the 8x8 digits, writes it
as DIR/model/model.onnx (built with the onnx package: scale, two dense layers, softmax),
DIR/inputs/digit-00000.csv ... one image each, and DIR/expected.txt: the lines the job's
parallel_run_step.txt must hold, as ONNX Runtime computes them on the CPU. Deterministic
and idempotent.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "generated"
DEFAULT_COUNT = 500
RANDOM_STATE = 0


def train() -> tuple[MLPClassifier, np.ndarray]:
    """The trained network and the held-out images (pixels 0-16)."""
    digits = load_digits()
    x_train, x_test, y_train, _ = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=RANDOM_STATE,
        stratify=digits.target)
    model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=RANDOM_STATE)
    model.fit(x_train / 16.0, y_train)
    return model, x_test


def to_onnx(model: MLPClassifier) -> onnx.ModelProto:
    """The network as an ONNX graph: images [N, 64] -> probabilities [N, 10]."""
    (w1, w2), (b1, b2) = model.coefs_, model.intercepts_
    weights = [numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)
               for a, name in ((np.float32(1 / 16), "scale"), (w1, "w1"), (b1, "b1"),
                               (w2, "w2"), (b2, "b2"))]
    nodes = [
        helper.make_node("Mul", ["images", "scale"], ["scaled"]),
        helper.make_node("Gemm", ["scaled", "w1", "b1"], ["hidden"]),
        helper.make_node("Relu", ["hidden"], ["activated"]),
        helper.make_node("Gemm", ["activated", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "digits",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 10])],
        initializer=weights)
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="batchfx examples/gpu")
    built.ir_version = 8  # readable by ONNX Runtime releases of the last years
    onnx.checker.check_model(built)
    return built


def prepare(out_dir: Path, count: int = DEFAULT_COUNT) -> list[str]:
    """Write model, inputs and expected.txt under ``out_dir``; returns the expected lines."""
    model, images = train()
    model_dir = out_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(to_onnx(model), model_dir / "model.onnx")
    inputs = out_dir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    for stale in inputs.glob("digit-*.csv"):  # a smaller --count leaves nothing behind
        stale.unlink()
    chosen = np.stack([images[i % len(images)] for i in range(count)]).astype(int)
    names = [f"digit-{i:05d}.csv" for i in range(count)]
    for name, pixels in zip(names, chosen, strict=True):
        (inputs / name).write_text(",".join(str(p) for p in pixels) + "\n")
    session = ort.InferenceSession(model_dir / "model.onnx", providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"images": chosen.astype(np.float32)})
    expected = [f"{name} {int(d)}" for name, d in zip(names, probabilities.argmax(axis=1),
                                                      strict=True)]
    agree = float(np.mean(probabilities.argmax(axis=1) == model.predict(chosen / 16.0)))
    if agree < 0.99:  # the graph is not the network it was built from
        raise SystemExit(f"the ONNX model agrees with scikit-learn on {agree:.1%} only")
    (out_dir / "expected.txt").write_text("\n".join(expected) + "\n")
    return expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="input files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count: at least 1")
    lines = prepare(args.out, args.count)
    print(f"wrote {args.out}/model/model.onnx, {len(lines)} inputs and expected.txt")


if __name__ == "__main__":
    main()
