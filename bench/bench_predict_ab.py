"""A/B of nncore inference between two checkouts (e.g. a branch and main), the two alternating in
fresh subprocesses (A, B, A, B, ...): single-image latency (1 thread, 15 x 50 calls per round) and
1024 images in batches of 256 (1 thread, best of 3), for the seed CNN or the SimpleRNN of
bench_predict.py.

    flock /tmp/nncore-bench.lock python bench/bench_predict_ab.py cnn 3 --a python --b <main>/python
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
W = r'''
import sys, time, numpy as np
sys.path.insert(0, sys.argv[2])
import nncore
from bench_predict import nncore_model
kind = sys.argv[1]
nncore.set_num_threads(1)
np.random.seed(0); m = nncore_model(kind)
rng = np.random.default_rng(1)
shape = (28, 28, 1) if kind == "cnn" else (28, 28)
data = rng.random((1024,) + shape, dtype=np.float32); x1 = data[:1]
for _ in range(50): m.predict(x1, verbose=0)
lat = []
for _ in range(15):
    t = time.perf_counter()
    for _ in range(50): m.predict(x1, verbose=0)
    lat.append((time.perf_counter() - t) / 50)
thr = []
for _ in range(3):
    t = time.perf_counter(); m.predict(data, batch_size=256, verbose=0); thr.append(time.perf_counter() - t)
print(min(lat), sorted(lat)[len(lat)//2], min(thr))
'''
ap = argparse.ArgumentParser()
ap.add_argument("kind", choices=["cnn", "rnn"])
ap.add_argument("rounds", type=int)
ap.add_argument("--a", required=True, help="python/ directory of the first nncore ('new')")
ap.add_argument("--b", required=True, help="python/ directory of the second nncore ('main')")
args = ap.parse_args()
bench_dir = str(pathlib.Path(__file__).resolve().parent)
res = {}
for r in range(args.rounds):
    for name, pp in (("new", args.a), ("main", args.b)):
        out = subprocess.run([sys.executable, "-c", W, args.kind, bench_dir], capture_output=True,
                             text=True, env=dict(os.environ, PYTHONPATH=os.path.abspath(pp)),
                             check=True).stdout.split()
        res.setdefault(name, []).append([float(v) for v in out])
for name, rs in res.items():
    print(name, "lat min %.0f us, lat median %.0f us, 1024 images 1 thread min %.3f s" % (
        min(r[0] for r in rs) * 1e6, statistics.median(r[1] for r in rs) * 1e6, min(r[2] for r in rs)))
n, m_ = res["new"], res["main"]
print("new/main per round (lat median, thr):", [("%.2f" % (a[1] / b[1]), "%.2f" % (a[2] / b[2])) for a, b in zip(n, m_)])
print("load", os.getloadavg()[0])
