"""Inference: nncore `model.predict` vs ONNX Runtime on the equivalent ONNX graph vs PyTorch vs
TensorFlow (Keras 3, the same model, its call in a tf.function), for the seed CNN
(Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10 on 28x28x1), SimpleRNN(128)-Dense10 on 28x28, and
"bn_dw_cnn" (Conv32 no bias-BatchNorm-ReLU6-DepthwiseConv3x3-BatchNorm-ReLU-SeparableConv64/2-
GlobalAveragePooling-Dense10 on 28x28x1: BatchNormalization folding and the depthwise kernel; its
ONNX graph is nncore's own export, no PyTorch twin); random weights and BatchNormalization
statistics (the same in all; outputs are checked to agree).

Latency: one image, 1 thread, median of many calls. Throughput: --images images in batches of
--batch, 2 threads (--threads), total seconds. ONNX Runtime and PyTorch are optional.

    flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        PYTHONPATH=python python bench/bench_predict.py [--models cnn,rnn,bn_dw_cnn] [--tf]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def bn_dw_layers(L):
    """The bn_dw_cnn layers from a Keras-like `layers` module (nncore's or Keras's)."""
    return [L.Conv2D(32, 3, use_bias=False), L.BatchNormalization(), L.ReLU(max_value=6.0),
            L.DepthwiseConv2D(3, padding="same"), L.BatchNormalization(), L.ReLU(),
            L.SeparableConv2D(64, 3, strides=2, activation="relu"),
            L.GlobalAveragePooling2D(), L.Dense(10, activation="softmax")]


def nncore_model(kind: str):
    import nncore
    from nncore import layers, models

    if kind == "bn_dw_cnn":
        model = models.Sequential([nncore.Input((28, 28, 1))] + bn_dw_layers(layers))
        rng = np.random.default_rng(5)
        for lay in model.layers:  # BatchNormalization statistics away from the identity
            if isinstance(lay, layers.BatchNormalization):
                c = lay.moving_mean.shape[0]
                lay.set_weights([rng.uniform(0.5, 2, c), rng.normal(size=c) * 0.1,
                                 rng.normal(size=c) * 0.1, rng.uniform(0.5, 2, c)])
    elif kind == "cnn":
        model = models.Sequential([
            layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ])
    else:
        model = models.Sequential([
            layers.SimpleRNN(128, input_shape=(28, 28)),
            layers.Dense(10, activation="softmax"),
        ])
    return model


def onnx_graph(kind: str, weights: list) -> bytes:
    """The same network as an ONNX graph (NCHW for the CNN, ONNX Runtime's native layout)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, np.float32), name))
        return name

    if kind == "cnn":
        x_shape = [None, 1, 28, 28]
        cur = "x"
        for i in range(3):
            k, b = weights[2 * i], weights[2 * i + 1]  # (KH,KW,C,F) -> (F,C,KH,KW)
            nodes.append(helper.make_node("Conv", [cur, const(f"w{i}", k.transpose(3, 2, 0, 1)),
                                                   const(f"b{i}", b)], [f"c{i}"]))
            nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
            cur = f"r{i}"
            if i < 2:
                nodes.append(helper.make_node("MaxPool", [cur], [f"p{i}"], kernel_shape=[2, 2],
                                              strides=[2, 2]))
                cur = f"p{i}"
        nodes.append(helper.make_node("Flatten", [cur], ["flat"]))
        # Keras flattens (h, w, c); NCHW flattens (c, h, w): reorder the Dense rows to match.
        w3 = weights[6].reshape(3, 3, 64, -1).transpose(2, 0, 1, 3).reshape(576, -1)
        nodes.append(helper.make_node("Gemm", ["flat", const("w3", w3), const("b3", weights[7])],
                                      ["d3"]))
        nodes.append(helper.make_node("Relu", ["d3"], ["h3"]))
        nodes.append(helper.make_node("Gemm", ["h3", const("w4", weights[8]),
                                               const("b4", weights[9])], ["logits"]))
    else:
        x_shape = [None, 28, 28]
        k, r, b = weights[0], weights[1], weights[2]
        nodes.append(helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]))  # (T,B,F)
        bias = np.concatenate([b, np.zeros_like(b)])[None]
        nodes.append(helper.make_node("RNN", ["xt", const("W", k.T[None]), const("R", r.T[None]),
                                              const("B", bias)], ["", "hT"], hidden_size=128,
                                      activations=["Tanh"]))
        nodes.append(helper.make_node("Squeeze", ["hT", const_i64(inits, "ax0", [0])], ["h"]))
        nodes.append(helper.make_node("Gemm", ["h", const("w1", weights[3]),
                                               const("b1", weights[4])], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["y"], axis=1))
    graph = helper.make_graph(
        nodes, kind, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def const_i64(inits, name, values):
    from onnx import numpy_helper

    inits.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
    return name


def keras_model(kind: str, weights: list):
    import keras

    L = keras.layers
    if kind == "bn_dw_cnn":
        m = keras.Sequential([keras.Input((28, 28, 1))] + bn_dw_layers(L))
    elif kind == "cnn":
        m = keras.Sequential([
            keras.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(),
            L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(),
            L.Conv2D(64, 3, activation="relu"), L.Flatten(), L.Dense(64, activation="relu"),
            L.Dense(10, activation="softmax")])
    else:
        m = keras.Sequential([keras.Input((28, 28)), L.SimpleRNN(128),
                              L.Dense(10, activation="softmax")])
    m.set_weights(weights)
    return m


def torch_model(kind: str, weights: list):
    import torch
    from torch import nn

    if kind == "cnn":
        m = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
            nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10), nn.Softmax(1))
        convs = [m[0], m[3], m[6]]
        with torch.no_grad():
            for i, c in enumerate(convs):
                c.weight.copy_(torch.from_numpy(weights[2 * i].transpose(3, 2, 0, 1).copy()))
                c.bias.copy_(torch.from_numpy(weights[2 * i + 1]))
            w3 = weights[6].reshape(3, 3, 64, -1).transpose(2, 0, 1, 3).reshape(576, -1)
            m[9].weight.copy_(torch.from_numpy(w3.T.copy()))
            m[9].bias.copy_(torch.from_numpy(weights[7]))
            m[11].weight.copy_(torch.from_numpy(weights[8].T.copy()))
            m[11].bias.copy_(torch.from_numpy(weights[9]))
        return m.eval(), lambda x: torch.from_numpy(x.transpose(0, 3, 1, 2).copy())

    class Rnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(28, 128, batch_first=True)
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            return torch.softmax(self.fc(self.rnn(x)[1][0]), 1)

    m = Rnn()
    with torch.no_grad():
        m.rnn.weight_ih_l0.copy_(torch.from_numpy(weights[0].T.copy()))
        m.rnn.weight_hh_l0.copy_(torch.from_numpy(weights[1].T.copy()))
        m.rnn.bias_ih_l0.copy_(torch.from_numpy(weights[2]))
        m.rnn.bias_hh_l0.zero_()
        m.fc.weight.copy_(torch.from_numpy(weights[3].T.copy()))
        m.fc.bias.copy_(torch.from_numpy(weights[4]))
    return m.eval(), torch.from_numpy


def median_call_s(fn, min_time=0.2, reps=7) -> float:
    from _harness import median_time

    return median_time(fn, reps=reps, warmup=3, min_time=min_time)


def run_one(fw: str, kind: str, threads: int, images: int, batch: int) -> tuple:
    """(latency s, throughput total s, max |y - y_nncore|) for one framework, in this process."""
    import nncore

    nncore.set_num_threads(threads)
    np.random.seed(0)
    model = nncore_model(kind)
    weights = [w.astype(np.float32) for w in model.get_weights()]
    rng = np.random.default_rng(1)
    shape = (28, 28) if kind == "rnn" else (28, 28, 1)
    data = rng.random((images,) + shape, dtype=np.float32)
    x1 = data[:1]
    ref = model.predict(data[:64], verbose=0)
    if fw == "nncore":
        def pred(x):
            return model.predict(x, batch_size=batch, verbose=0)
    elif fw == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        if kind == "bn_dw_cnn":  # nncore's own ONNX export of the model (NHWC input)
            import tempfile

            with tempfile.TemporaryDirectory() as d:
                model.export(os.path.join(d, "m.onnx"), format="onnx")
                with open(os.path.join(d, "m.onnx"), "rb") as f:
                    graph = f.read()
        else:
            graph = onnx_graph(kind, weights)
        sess = ort.InferenceSession(graph, so, providers=["CPUExecutionProvider"])
        iname = sess.get_inputs()[0].name
        nchw = kind == "cnn"

        def pred(x):
            xs = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x
            return np.concatenate([sess.run(None, {iname: xs[i:i + batch]})[0]
                                   for i in range(0, len(xs), batch)])
    elif fw == "tf":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        km = keras_model(kind, weights)
        call = tf.function(lambda x: km(x, training=False), reduce_retracing=True)

        def pred(x):
            return np.concatenate([call(tf.constant(x[i:i + batch])).numpy()
                                   for i in range(0, len(x), batch)])
    else:
        import torch

        torch.set_num_threads(threads)
        tm, to_t = torch_model(kind, weights)

        def pred(x):
            xt = to_t(x)
            with torch.inference_mode():
                return torch.cat([tm(xt[i:i + batch]) for i in range(0, len(xt), batch)]).numpy()
    err = float(np.abs(pred(data[:64]) - ref).max())
    lat = median_call_s(lambda: pred(x1))
    thr = median_call_s(lambda: pred(data), min_time=0.0, reps=3)
    return lat, thr, err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=256, help="batch size for the throughput run")
    ap.add_argument("--threads", type=int, default=2, help="threads for throughput")
    ap.add_argument("--models", default="cnn,rnn,bn_dw_cnn")
    ap.add_argument("--tf", action="store_true",
                    help="also TensorFlow (Keras 3 model, call in a tf.function)")
    ap.add_argument("--no-interop", action="store_true",
                    help="skip the Keras-file row (bench_interop.py: a Keras-trained model "
                         "loaded by nncore vs TensorFlow vs ONNX Runtime)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternating rounds (nncore, ort, torch, nncore, ...); medians reported")
    ap.add_argument("--compare", metavar="PYTHON_DIR",
                    help="also run the nncore found in this python/ directory (e.g. a main "
                         "checkout's), as 'nncore-base', alternating with the others")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:  # one measurement per process (TensorFlow fixes its threads at start-up)
        fw, kind, part = args.worker
        if part == "lat":
            print(run_one(fw, kind, 1, 64, 1)[0])  # latency at 1 thread
        else:
            _, thr, err = run_one(fw, kind, args.threads, args.images, args.batch)
            print(f"{thr} {err}")
        return

    from _harness import cpu_model, markdown_table

    fws = ["nncore"] + (["nncore-base"] if args.compare else [])
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        fws.append("ort")
    if importlib.util.find_spec("torch"):
        fws.append("torch")
    if args.tf and importlib.util.find_spec("tensorflow") and importlib.util.find_spec("keras"):
        fws.append("tf")
    print(f"Inference, random weights; CPU {cpu_model()} ({os.cpu_count()} cores); latency: one "
          f"image, 1 thread; throughput: {args.images} images in batches of {args.batch}, "
          f"{args.threads} threads; load average {os.getloadavg()[0]:.1f}; median of "
          f"{args.rounds} alternating round(s)")
    for kind in args.models.split(","):
        runs: dict = {}
        loads = []
        for _ in range(args.rounds):
            for fw in fws:  # each in a fresh process: thread pools and imports do not interfere
                if fw == "torch" and kind == "bn_dw_cnn":
                    continue  # no PyTorch twin of this model
                env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
                if fw == "nncore-base":
                    env["PYTHONPATH"] = args.compare
                vals = []
                for part in ("lat", "thr"):
                    loads.append(os.getloadavg()[0])
                    out = subprocess.run([sys.executable, __file__, "--worker",
                                          "nncore" if fw == "nncore-base" else fw, kind, part,
                                          "--images", str(args.images), "--batch",
                                          str(args.batch), "--threads", str(args.threads)],
                                         capture_output=True, text=True, env=env)
                    if out.returncode != 0:
                        print(f"{fw} {kind} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                        break
                    vals += [float(v) for v in out.stdout.split()[-(1 if part == "lat" else 2):]]
                if len(vals) == 3:
                    runs.setdefault(fw, []).append(vals)
        res = {fw: [float(np.median([r[i] for r in rs])) for i in range(3)]
               for fw, rs in runs.items()}
        rows = [[fw, f"{lat * 1e6:.0f} us", f"{thr:.3f} s", f"{err:.1e}"]
                for fw, (lat, thr, err) in res.items()]
        if "nncore" in res and "ort" in res:
            rows.append(["nncore / ORT", f"{res['nncore'][0] / res['ort'][0]:.2f}",
                         f"{res['nncore'][1] / res['ort'][1]:.2f}", ""])
        if "nncore-base" in res:
            rows.append(["nncore / nncore-base", f"{res['nncore'][0] / res['nncore-base'][0]:.2f}",
                         f"{res['nncore'][1] / res['nncore-base'][1]:.2f}", ""])
        print(f"\n{kind} (1-min load during the runs {min(loads):.1f}-{max(loads):.1f}):")
        print(markdown_table(["framework", "latency", "throughput (total)", "max |y - nncore|"],
                             rows))
    if not args.no_interop and all(importlib.util.find_spec(m) for m in
                                   ("keras", "onnxruntime", "onnx", "h5py")):
        # The issue-14 row: a Keras-trained .keras file loaded into nncore, into TensorFlow,
        # and (exported by nncore) into ONNX Runtime; in its own process.
        print("\nKeras-trained model (.keras file): load time and 1-sample latency")
        out = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__),
                                                           "bench_interop.py")],
                             capture_output=True, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        print(out.stdout if out.returncode == 0 else f"failed:\n{out.stderr[-2000:]}")


if __name__ == "__main__":
    main()
