"""Vocabularies in .keras files: TextVectorization, StringLookup and IntegerLookup adapted on one
side (Keras 3 / TensorFlow 2.21, or nncore) and read by the other. Keras 3 writes an adapted
layer's vocabulary to the zip's assets/<layer path>/vocabulary.txt (TextVectorization: also under
<path>/_lookup_layer) and a tf_idf layer's weights as the h5 dataset 'idf_weights'; both are
read as checked data (hostile files below)."""

from __future__ import annotations

import io
import json
import zipfile

import nncore as nk
import numpy as np
import pytest
from conftest import require

pytestmark = pytest.mark.filterwarnings(  # Keras 3 saving under numpy 2
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

DOCS = ["The cat sat on the mat!", "the dog ran, fast", "a cat", "dog dog cat", "Ünïcode wörds ok"]
QUERY = ["the cat ran", "zebra dog a", "cat", "", "wörds, OK?"]


@pytest.fixture(scope="module")
def keras():
    require("h5py")
    require("tensorflow")
    return require("keras", minversion="3.0")


def _kpredict(km, x):
    import tensorflow as tf

    out = np.asarray(km(tf.constant(x)))
    if out.dtype == object:  # Keras's strings are bytes
        out = np.array([v.decode("utf-8") for v in out.ravel()]).reshape(out.shape)
    return out


TV_CONFIGS = [
    dict(output_mode="int", output_sequence_length=6),
    dict(output_mode="int"),
    dict(output_mode="int", max_tokens=6, standardize="lower", split="character"),
    dict(output_mode="multi_hot", max_tokens=12, pad_to_max_tokens=True),
    dict(output_mode="count", ngrams=2),
    dict(output_mode="tf_idf"),
    dict(output_mode="tf_idf", max_tokens=9, pad_to_max_tokens=True, ngrams=(1, 3)),
    dict(output_mode="int", split=None, standardize=None),
]


def _tv_model(K, tv):
    inp = K.Input(shape=(), dtype="string")
    return K.Model(inp, tv(inp))


@pytest.mark.parametrize("kw", TV_CONFIGS,
                         ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_text_vectorization_adapted_in_keras_read_by_nncore_and_back(keras, kw, tmp_path):
    tv = keras.layers.TextVectorization(**kw)
    tv.adapt(DOCS)
    km = _tv_model(keras, tv)
    km.save(tmp_path / "k.keras")
    names = zipfile.ZipFile(tmp_path / "k.keras").namelist()
    assert "assets/layers/text_vectorization/vocabulary.txt" in names  # the layout under test
    want = _kpredict(km, QUERY)
    ours = nk.models.load_model(tmp_path / "k.keras")
    np.testing.assert_array_equal(ours.predict(np.array(QUERY, object), verbose=0), want)
    assert ours.layers[-1].get_vocabulary() == tv.get_vocabulary()
    ours.save(tmp_path / "n.keras")
    back = keras.models.load_model(tmp_path / "n.keras")
    np.testing.assert_array_equal(_kpredict(back, QUERY), want)
    assert back.layers[-1].get_vocabulary() == tv.get_vocabulary()
    again = nk.models.load_model(tmp_path / "n.keras")
    np.testing.assert_array_equal(again.predict(np.array(QUERY, object), verbose=0), want)


@pytest.mark.parametrize("mode", ["int", "tf_idf"])
def test_text_vectorization_adapted_in_nncore_read_by_keras(keras, mode, tmp_path):
    tv = nk.layers.TextVectorization(output_mode=mode, max_tokens=10)
    tv.adapt(DOCS)
    m = _tv_model(nk, tv)
    m.save(tmp_path / "n.keras")
    with zipfile.ZipFile(tmp_path / "n.keras") as z:
        cfg = json.loads(z.read("config.json"))
        a = z.read("assets/layers/text_vectorization/vocabulary.txt")
        b = z.read("assets/layers/text_vectorization/_lookup_layer/vocabulary.txt")
    assert a == b == "\n".join(tv.get_vocabulary()).encode()
    tcfg = cfg["config"]["layers"][1]["config"]
    assert tcfg["vocabulary"] is None and tcfg["idf_weights"] is None  # as Keras: in assets/
    km = keras.models.load_model(tmp_path / "n.keras")
    np.testing.assert_allclose(_kpredict(km, QUERY), m.predict(np.array(QUERY, object),
                                                               verbose=0), rtol=1e-6, atol=0)


def test_text_model_trained_on_both_sides(keras, tmp_path, rng):
    """TextVectorization -> Embedding -> pooling -> Dense, adapted and saved by Keras: nncore
    predicts the same (1e-5), and nncore's retrained file is read by Keras at its weights."""
    def build(K, tv):
        inp = K.Input(shape=(), dtype="string")
        x = K.layers.Embedding(tv.vocabulary_size(), 4)(tv(inp))
        x = K.layers.GlobalAveragePooling1D()(x)
        return K.Model(inp, K.layers.Dense(2)(x))

    keras.utils.set_random_seed(3)
    tv = keras.layers.TextVectorization(output_sequence_length=5)
    tv.adapt(DOCS)
    km = build(keras, tv)
    km.save(tmp_path / "k.keras")
    ours = nk.models.load_model(tmp_path / "k.keras")
    q = np.array(QUERY, object)
    np.testing.assert_allclose(ours.predict(q, verbose=0), _kpredict(km, QUERY), atol=1e-5)
    ours.compile(optimizer="sgd", loss="mse")
    ours.fit(q, rng.normal(size=(len(QUERY), 2)).astype(np.float32), epochs=2, verbose=0)
    ours.save(tmp_path / "n.keras")
    back = keras.models.load_model(tmp_path / "n.keras")
    np.testing.assert_allclose(_kpredict(back, QUERY), ours.predict(q, verbose=0), atol=1e-5)


LOOKUPS = [
    ("StringLookup", {}), ("StringLookup", {"output_mode": "count"}),
    ("StringLookup", {"output_mode": "tf_idf"}),
    ("StringLookup", {"mask_token": "", "num_oov_indices": 2}),
    ("StringLookup", {"output_mode": "tf_idf", "max_tokens": 8, "pad_to_max_tokens": True}),
    ("StringLookup", {"invert": True}),
    ("IntegerLookup", {}), ("IntegerLookup", {"output_mode": "multi_hot"}),
    ("IntegerLookup", {"output_mode": "tf_idf"}), ("IntegerLookup", {"mask_token": 0}),
    ("IntegerLookup", {"invert": True}),
]


@pytest.mark.parametrize("cls,kw", LOOKUPS, ids=lambda v: str(v))
def test_adapted_lookups_both_ways(keras, cls, kw, tmp_path, rng):
    strings = cls == "StringLookup"
    # '' is a token here (no mask token); it must not be the last one: Keras's own reader drops
    # a trailing empty line, so Keras cannot read back a vocabulary ending in '' (see below).
    data = (np.array([["b", "a", "b"], ["c", "b", ""], ["", "a", "é"]]) if strings else
            np.array([[4, 9, 4], [7, 4, 0], [12, 9, 9]]))
    q = (np.array([["a", "zz", ""], ["é", "b", "d"]]) if strings else
         np.array([[9, 99, 0], [12, 4, 7]]))
    if kw.get("invert"):
        q = np.array([[1, 0, 2], [3, 4, 1]])
    in_dtype = "string" if strings and not kw.get("invert") else "int64"

    def build(K, adapt_with):
        look = getattr(K.layers, cls)(**kw)
        if kw.get("invert"):
            fwd = getattr(K.layers, cls)(**{k: v for k, v in kw.items() if k != "invert"})
            fwd.adapt(data)
            look.set_vocabulary(fwd.get_vocabulary(include_special_tokens=False))
        else:
            look.adapt(data)
        return K.Sequential([K.Input((3,), dtype=in_dtype), look])

    km = build(keras, data)
    km.save(tmp_path / "k.keras")
    want = _kpredict(km, q)
    ours = nk.models.load_model(tmp_path / "k.keras")
    got = np.asarray(ours.predict(q.astype(object) if in_dtype == "string" else q, verbose=0))
    if kw.get("invert") and strings:  # Keras's kind: UTF-8 bytes objects (decoded in want)
        assert got.dtype == object and all(isinstance(v, bytes) for v in got.ravel())
        got = np.array([v.decode("utf-8") for v in got.ravel()]).reshape(got.shape)
    np.testing.assert_array_equal(got.astype(want.dtype), want)
    ours.save(tmp_path / "n.keras")
    back = _kpredict(keras.models.load_model(tmp_path / "n.keras"), q)
    np.testing.assert_array_equal(back, want)
    mine = build(nk, data)  # nncore's own adapt, written, read by Keras
    mine.save(tmp_path / "m.keras")
    theirs = _kpredict(keras.models.load_model(tmp_path / "m.keras"), q)
    np.testing.assert_array_equal(theirs, want)


@pytest.mark.parametrize("vocab", [["a\nb", "c", "d\re"], ["c", "x\u2028y"], ["c", "", "f\x0cg"],
                                   ["c", "d", ""]])
def test_vocabulary_keras_cannot_read_back_stays_in_the_config(keras, vocab, tmp_path):
    """Keras reads assets with str.splitlines and drops trailing empty lines: a vocabulary that
    would not survive that is written in config.json (which Keras reads exactly)."""
    look = nk.layers.StringLookup(vocabulary=vocab)
    m = nk.Sequential([nk.Input((2,), dtype="string"), look])
    m.save(tmp_path / "n.keras")
    with zipfile.ZipFile(tmp_path / "n.keras") as z:
        assert not [n for n in z.namelist() if n.startswith("assets/")]
        assert json.loads(z.read("config.json"))["config"]["layers"][1]["config"][
            "vocabulary"] == vocab
    q = np.array([[vocab[0], vocab[2] if len(vocab) > 2 else "zz"], [vocab[1], "zz"]], object)
    want = m.predict(q, verbose=0)
    np.testing.assert_array_equal(want, [[1, 3 if len(vocab) > 2 else 0], [2, 0]])
    np.testing.assert_array_equal(_kpredict(keras.models.load_model(tmp_path / "n.keras"),
                                            q.astype(str)), want)
    assert look.get_vocabulary()[-1] == vocab[-1]
    np.testing.assert_array_equal(nk.models.load_model(tmp_path / "n.keras").predict(
        q, verbose=0), want)


# ---- hostile and corrupt files (nncore only: h5py) --------------------------------------------
def _saved(tmp_path, mode="int"):
    require("h5py")
    tv = nk.layers.TextVectorization(output_mode=mode)
    tv.adapt(DOCS)
    m = _tv_model(nk, tv)
    p = tmp_path / "good.keras"
    m.save(p)
    with zipfile.ZipFile(p) as z:
        return m, {i.filename: z.read(i.filename) for i in z.infolist()}


def _write(tmp_path, members, compressed=()):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if name in compressed
                       else zipfile.ZIP_STORED)
    p = tmp_path / "bad.keras"
    p.write_bytes(buf.getvalue())
    return p


TV = "assets/layers/text_vectorization/vocabulary.txt"
TVL = "assets/layers/text_vectorization/_lookup_layer/vocabulary.txt"


def test_nncore_round_trip_reads_its_assets(tmp_path):
    for mode in ("int", "tf_idf"):
        m, members = _saved(tmp_path, mode)
        assert TV in members and TVL in members
        back = nk.models.load_model(_write(tmp_path, members))
        q = np.array(QUERY, object)
        np.testing.assert_array_equal(back.predict(q, verbose=0), m.predict(q, verbose=0))


def _edit_idf(members, fn):
    import h5py

    buf = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buf, "a") as f:
        fn(f)
    return {**members, "model.weights.h5": buf.getvalue()}


HOSTILE = {
    "foreign-asset": "unexpected asset", "asset-for-a-layer-without-vocabulary":
    "unexpected asset", "compressed": "is compressed", "not-utf8": "not UTF-8",
    "copies-differ": "copies of layer .* vocabulary differ", "repeated-token": "repeated",
    "holds-the-oov-token-twice": "must not hold the mask or OOV", "also-in-config":
    "a vocabulary in its config and another in assets", "oversized": "larger than 16 bytes",
    "idf-missing": "missing dataset .*idf_weights", "idf-shape": "shape \\(1000,\\)",
    "idf-nan": "NaN", "idf-dtype": "float64", "idf-copies-differ": "idf weights differ",
    "idf-extra": "unexpected dataset"}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_vocabulary_files_are_refused(case, tmp_path, monkeypatch):
    mode = "tf_idf" if case.startswith("idf") else "int"
    _, members = _saved(tmp_path, mode)
    compressed = ()
    if case == "foreign-asset":
        members["assets/evil.py"] = b"import os"
    elif case == "asset-for-a-layer-without-vocabulary":
        members["assets/layers/input_layer/vocabulary.txt"] = b"a\nb"
    elif case == "compressed":
        compressed = (TV,)
        members[TV] = members[TVL] = members[TV] + b"\n" + b"x" * 2000
    elif case == "not-utf8":
        members[TV] = members[TVL] = b"\n[UNK]\ncat\n\xff\xfe"
    elif case == "copies-differ":
        members[TVL] = members[TV] + b"\nextra"
    elif case == "repeated-token":
        members[TV] = members[TVL] = b"\n[UNK]\ncat\ndog\ncat"
    elif case == "holds-the-oov-token-twice":
        members[TV] = members[TVL] = b"\n[UNK]\ncat\n[UNK]"
    elif case == "also-in-config":
        cfg = json.loads(members["config.json"])
        cfg["config"]["layers"][1]["config"]["vocabulary"] = ["cat", "dog"]
        members["config.json"] = json.dumps(cfg).encode()
    elif case == "oversized":
        from nncore.saving import keras_format

        monkeypatch.setattr(keras_format, "MAX_ASSET_BYTES", 16)
    elif case == "idf-missing":
        members = _edit_idf(members, lambda f: f.__delitem__(
            "layers/text_vectorization/vars/idf_weights"))
    elif case == "idf-shape":
        def f(h):
            del h["layers/text_vectorization/vars/idf_weights"]
            h["layers/text_vectorization/vars/idf_weights"] = np.ones(1000, np.float32)
        members = _edit_idf(members, f)
    elif case == "idf-nan":
        def f(h):
            h["layers/text_vectorization/vars/idf_weights"][0] = np.nan
            h["layers/text_vectorization/_lookup_layer/vars/idf_weights"][0] = np.nan
        members = _edit_idf(members, f)
    elif case == "idf-dtype":
        def f(h):
            for g in ("layers/text_vectorization/vars", "layers/text_vectorization/"
                      "_lookup_layer/vars"):
                v = h[f"{g}/idf_weights"][()]
                del h[f"{g}/idf_weights"]
                h[f"{g}/idf_weights"] = v.astype(np.float64)
        members = _edit_idf(members, f)
    elif case == "idf-copies-differ":
        def f(h):
            h["layers/text_vectorization/vars/idf_weights"][1] += 1.0
        members = _edit_idf(members, f)
    elif case == "idf-extra":
        members = _edit_idf(members, lambda h: h.create_dataset(
            "layers/text_vectorization/vars/idf_weights_2", data=np.ones(3, np.float32)))
    with pytest.raises(ValueError, match="not a valid Keras model file: .*" + HOSTILE[case]):
        nk.models.load_model(_write(tmp_path, members, compressed))


def test_integer_vocabulary_tokens_are_parsed_strictly(tmp_path):
    require("h5py")
    look = nk.layers.IntegerLookup()
    look.adapt(np.array([3, 5, 5, 8]))
    m = nk.Sequential([nk.Input((2,), dtype="int64"), look])
    m.save(tmp_path / "good.keras")
    with zipfile.ZipFile(tmp_path / "good.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    name = "assets/layers/integer_lookup/vocabulary.txt"
    assert members[name] == b"-1\n5\n8\n3"
    np.testing.assert_array_equal(nk.models.load_model(_write(tmp_path, members)).predict(
        np.array([[8, 4]]), verbose=0), [[2, 0]])
    for bad in (b"-1\n5\n8\n3.0", b"-1\n5\n 8\n3", b"-1\n5\n8\n1e3", b"-1\n5\n8\n" + b"9" * 30):
        with pytest.raises(ValueError, match="not an integer token"):
            nk.models.load_model(_write(tmp_path, {**members, name: bad}))


def test_vocabulary_lines_are_split_as_keras_splits_them(tmp_path):
    """A file whose lines end in \\r\\n, with a \\x0c inside and trailing empty lines, gives the
    tokens Keras 3.15's reader gives (splitlines, trailing '' dropped)."""
    require("h5py")
    look = nk.layers.StringLookup()
    look.adapt(np.array(["p", "q", "q"]))
    m = nk.Sequential([nk.Input((1,), dtype="string"), look])
    m.save(tmp_path / "good.keras")
    with zipfile.ZipFile(tmp_path / "good.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    name = "assets/layers/string_lookup/vocabulary.txt"
    assert members[name] == b"[UNK]\nq\np"
    members[name] = b"[UNK]\r\nq\r\np\x0cr\n\n\n"
    back = nk.models.load_model(_write(tmp_path, members))
    assert back.layers[-1].get_vocabulary() == ["[UNK]", "q", "p", "r"]


@pytest.mark.parametrize("which", ["text_vectorization", "string_lookup"])
def test_vocabulary_sized_model_trains_to_the_same_weights(keras, which, tmp_path, rng):
    """An adapted layer whose vocabulary sets the next layer's shape (multi_hot -> Dense), saved
    by Keras: nncore predicts the same, and one more SGD epoch on both sides ends at the same
    weights (rtol 2e-3)."""
    keras.utils.set_random_seed(5)
    if which == "text_vectorization":
        pre = keras.layers.TextVectorization(output_mode="multi_hot")
        pre.adapt(DOCS)
        inp = keras.Input(shape=(), dtype="string")
        x, kx = np.array(QUERY * 3, object), np.array(QUERY * 3)
    else:
        pre = keras.layers.StringLookup(output_mode="count")
        pre.adapt(np.array([["a", "b", "b"], ["c", "a", "d"]]))
        inp = keras.Input((3,), dtype="string")
        kx = np.array([["a", "b", "q"], ["d", "d", "c"], ["b", "b", "b"]] * 2)
        x = kx.astype(object)
    km = keras.Model(inp, keras.layers.Dense(2)(pre(inp)))
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    km.save(tmp_path / "k.keras")
    ours = nk.models.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(ours.predict(x, verbose=0), _kpredict(km, kx), atol=1e-5)
    y = rng.normal(size=(len(x), 2)).astype(np.float32)
    import tensorflow as tf

    km.fit(tf.constant(kx), y, epochs=1, batch_size=len(x), shuffle=False, verbose=0)
    ours.fit(x, y, epochs=1, batch_size=len(x), shuffle=False, verbose=0)
    assert len(ours.get_weights()) == len(km.get_weights()) == 2
    for a, b in zip(ours.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=2e-3, atol=1e-6)
