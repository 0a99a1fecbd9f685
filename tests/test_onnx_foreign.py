"""ONNX files written by another exporter (PyTorch's torch.onnx.export, the TorchScript-based
one: dynamo=False, which needs no onnxscript) read by nncore.onnx.load: an MLP (Gemm), an NCHW
CNN (the input's channels-last transpose made once), an LSTM and a GRU (zero initial states
computed from the input's shape, the last step taken by index). Predictions equal PyTorch's
within 1e-5, and the imported model trains like PyTorch (one SGD step, same predictions)."""

from __future__ import annotations

import warnings

import nncore
import numpy as np
import pytest
from conftest import require

TOL = 1e-5


def _export(torch, m, x, path):
    m.eval()
    with warnings.catch_warnings():  # the legacy exporter's deprecation and tracer notes
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


def _models(torch):
    nn = torch.nn

    class Rec(nn.Module):
        def __init__(self, cell):
            super().__init__()
            self.rnn = cell(3, 4, batch_first=True)
            self.out = nn.Linear(4, 2)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.out(torch.tanh(y[:, -1]))

    return {
        "mlp": (lambda: nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh(),
                                      nn.Linear(6, 3), nn.Softmax(-1)), (5,)),
        "cnn": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(4, 3, 3, stride=1), nn.Sigmoid(),
                                      nn.AvgPool2d(1), nn.Flatten(), nn.Linear(12, 2)),
                (2, 8, 8)),
        "lstm": (lambda: Rec(nn.LSTM), (6, 3)),
        "gru": (lambda: Rec(nn.GRU), (6, 3)),
    }


@pytest.mark.parametrize("kind", ["mlp", "cnn", "lstm", "gru"])
def test_torch_exported_model_predicts_and_trains(kind, tmp_path):
    torch = require("torch")
    require("onnx")
    torch.manual_seed(0)
    make, shape = _models(torch)[kind]
    tm = make()
    x = torch.randn((5,) + shape)
    _export(torch, tm, x, tmp_path / "m.onnx")
    m = nncore.onnx.load(tmp_path / "m.onnx")
    xn = x.numpy()
    np.testing.assert_allclose(m.predict(xn, verbose=0), tm(x).detach().numpy(), atol=TOL,
                               rtol=0)
    # one SGD step on the same batch (mean squared error) on both sides
    y = torch.randn(tm(x).shape)
    if kind == "lstm":  # PyTorch's LSTM has two biases where Keras's (nncore's) has their sum:
        tm.rnn.bias_hh_l0.requires_grad_(False)  # train one, as the sum trains (GRU: both exist)
    tm.train()
    opt = torch.optim.SGD(tm.parameters(), lr=0.1)
    opt.zero_grad()
    torch.nn.functional.mse_loss(tm(x), y).backward()
    opt.step()
    m.compile(optimizer=nncore.optimizers.SGD(0.1), loss="mse")
    m.fit(xn, y.numpy(), epochs=1, batch_size=len(xn), shuffle=False, verbose=0)
    tm.eval()
    np.testing.assert_allclose(m.predict(xn, verbose=0), tm(x).detach().numpy(), atol=TOL,
                               rtol=0)


def test_torch_model_with_an_op_nncore_cannot_read_names_it(tmp_path):
    torch = require("torch")
    require("onnx")

    class CumSum(torch.nn.Module):
        def forward(self, x):
            return torch.cumsum(x, 1)

    _export(torch, torch.nn.Sequential(torch.nn.Linear(4, 4), CumSum()), torch.randn(2, 4),
            tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=r"\(CumSum\): operator 'CumSum' is not supported"):
        nncore.onnx.load(tmp_path / "m.onnx")


def test_a_nonzero_initial_state_is_refused(tmp_path):
    torch = require("torch")
    require("onnx")

    class WithState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.GRU(3, 4, batch_first=True)
            self.h0 = torch.nn.Parameter(torch.ones(1, 1, 4))

        def forward(self, x):
            return self.rnn(x, self.h0.expand(1, x.shape[0], 4).contiguous())[0]

    _export(torch, WithState(), torch.randn(2, 5, 3), tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="ONNX import"):
        nncore.onnx.load(tmp_path / "m.onnx")


# ---- tf2onnx (1.17, a test-only package) of Keras 3 models run by TensorFlow ------------------
def _keras_case(keras, kind):
    K = keras.layers
    if kind == "mlp":
        return keras.Sequential([keras.Input((5,)), K.Dense(8, activation="relu"),
                                 K.Dense(3, activation="softmax")]), (5,)
    if kind == "cnn":
        return keras.Sequential([keras.Input((8, 8, 2)),
                                 K.Conv2D(4, 3, padding="same", activation="relu"),
                                 K.MaxPooling2D(2), K.Conv2D(3, 3), K.Flatten(),
                                 K.Dense(2)]), (8, 8, 2)
    return keras.Sequential([keras.Input((6, 3)), K.LSTM(4), K.Dense(2)]), (6, 3)


@pytest.mark.parametrize("kind", ["mlp", "cnn", "lstm"])
def test_tf2onnx_exported_keras_model_predicts_and_trains(kind, tmp_path, rng):
    tf = require("tensorflow")
    keras = require("keras", minversion="3.0")
    tf2onnx = require("tf2onnx")
    require("onnx")
    keras.utils.set_random_seed(1)
    km, shape = _keras_case(keras, kind)
    for v in km.weights:  # non-zero biases too
        v.assign(rng.normal(size=tuple(v.shape)).astype(np.float32) * 0.3)
    spec = (tf.TensorSpec((None,) + shape, tf.float32, name="x"),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tf2onnx.convert.from_function(tf.function(lambda t: km(t)), input_signature=spec,
                                      opset=17, output_path=str(tmp_path / "m.onnx"))
    m = nncore.onnx.load(tmp_path / "m.onnx")
    x = rng.normal(size=(5,) + shape).astype(np.float32)
    np.testing.assert_allclose(m.predict(x, verbose=0), km.predict(x, verbose=0), atol=TOL,
                               rtol=0)
    y = rng.normal(size=km.output_shape[1:]).astype(np.float32)[None].repeat(5, 0)
    for model, mod in ((km, keras), (m, nncore)):
        model.compile(optimizer=mod.optimizers.SGD(0.1), loss="mse")
        model.fit(x, y, epochs=1, batch_size=5, shuffle=False, verbose=0)
    np.testing.assert_allclose(m.predict(x, verbose=0), km.predict(x, verbose=0), atol=TOL,
                               rtol=0)
