"""ONNX Runtime CPU latency of bvlc_googlenet.onnx at batch 1 (the peer for `googlenet bench`).
usage: python bench/ort_cpu.py MODEL.onnx THREADS ITERS WARMUP  -> one JSON line"""
import json, sys, time
import numpy as np
import onnxruntime as ort

model, threads, iters, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
x = (np.sin(np.arange(3 * 224 * 224, dtype=np.float32) * 0.01) * 50).reshape(1, 3, 224, 224).astype(np.float32)
name = sess.get_inputs()[0].name
for _ in range(warmup):
    sess.run(None, {name: x})
times = []
for _ in range(iters):
    t = time.perf_counter()
    sess.run(None, {name: x})
    times.append((time.perf_counter() - t) * 1e3)
times.sort()
print(json.dumps({"median_ms": times[len(times) // 2], "min_ms": times[0], "iters": iters, "threads": threads,
                  "backend": f"onnxruntime {ort.__version__} CPUExecutionProvider"}))
