"""A Keras-trained model run three ways: loaded into nncore from its .keras file, in TensorFlow
(Keras 3), and in ONNX Runtime from the ONNX file nncore exports. Load time (file -> model ready
to predict, first prediction included) and single-sample latency (median), for an MNIST-sized
CNN and an LSTM classifier.

    python bench/bench_interop.py [--reps 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _harness import cpu_model, median_time  # noqa: E402


def _keras_models(keras):
    L = keras.layers
    cnn = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"),
                            L.MaxPooling2D(), L.Conv2D(64, 3, activation="relu"),
                            L.MaxPooling2D(), L.Flatten(), L.Dense(128, activation="relu"),
                            L.Dense(10, activation="softmax")])
    rnn = keras.Sequential([keras.Input((28, 28)), L.LSTM(128), L.Dense(10, activation="softmax")])
    # the issue-11 layers a modern small CNN uses (BatchNormalization, depthwise/separable conv,
    # global pooling): converted from the .keras file and exported to ONNX like the others
    mob = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, 3, use_bias=False),
                            L.BatchNormalization(), L.ReLU(max_value=6.0),
                            L.DepthwiseConv2D(3, padding="same"), L.BatchNormalization(),
                            L.ReLU(), L.SeparableConv2D(64, 3, strides=2, activation="relu"),
                            L.GlobalAveragePooling2D(), L.Dense(10, activation="softmax")])
    return {"cnn": (cnn, (28, 28, 1)), "lstm": (rnn, (28, 28)), "bn_dw_cnn": (mob, (28, 28, 1))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import nncore
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    print(f"CPU: {cpu_model()}; threads: nncore {nncore.get_num_threads()}")
    print("| model | runtime | load (ms) | 1-sample latency (us) |")
    print("|---|---|---:|---:|")
    with tempfile.TemporaryDirectory() as d:
        for name, (km, shape) in _keras_models(keras).items():
            x = rng.normal(size=(64,) + shape).astype(np.float32)
            km.compile("adam", "sparse_categorical_crossentropy")
            km.fit(x, rng.integers(0, 10, 64), epochs=1, verbose=0)
            kpath, opath = os.path.join(d, f"{name}.keras"), os.path.join(d, f"{name}.onnx")
            km.save(kpath)
            one = x[:1]

            def load_nn(kpath=kpath, one=one):
                m = nncore.models.load_model(kpath, compile=False)
                m.predict(one, verbose=0)
                return m

            def load_tf(kpath=kpath, one=one):
                m = keras.models.load_model(kpath, compile=False)
                m.predict(one, verbose=0)
                return m

            nn = load_nn()
            nn.export(opath, format="onnx")

            def load_ort(opath=opath, one=one):
                s = ort.InferenceSession(opath, providers=["CPUExecutionProvider"])
                s.run(None, {s.get_inputs()[0].name: one})
                return s

            sess = load_ort()
            tfm = load_tf()
            iname = sess.get_inputs()[0].name
            ref = tfm.predict(one, verbose=0)
            assert np.abs(nn.predict(one, verbose=0) - ref).max() < 1e-5
            assert np.abs(sess.run(None, {iname: one})[0] - ref).max() < 1e-5
            rows = []
            for label, load, run in (
                    ("nncore", load_nn, lambda nn=nn, one=one: nn.predict_on_batch(one)),
                    ("TensorFlow/Keras", load_tf,
                     lambda tfm=tfm, one=one: tfm(one, training=False)),
                    ("ONNX Runtime", load_ort,
                     lambda s=sess, i=iname, one=one: s.run(None, {i: one}))):
                t0 = time.perf_counter()
                load()
                t_load = time.perf_counter() - t0
                t_run = median_time(run, reps=args.reps, warmup=10)
                rows.append((label, t_load, t_run))
            for label, t_load, t_run in rows:
                print(f"| {name} | {label} | {t_load * 1e3:.1f} | {t_run * 1e6:.0f} |")


if __name__ == "__main__":
    main()
