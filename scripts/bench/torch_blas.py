# What PyTorch's float32 MatMul runs on, and how fast: prints one JSON line with torch's version,
# its BLAS (MKL or OpenBLAS, from torch.__config__), the OpenBLAS kernel in use when OPENBLAS_VERBOSE=2
# makes OpenBLAS print it, and the best of ten 1024^3 MatMuls in GFLOP/s with the given threads.
#   python torch_blas.py THREADS
import json, sys

import torch
from torch_common import matmul_gflops

torch.set_num_threads(int(sys.argv[1]))
config = torch.__config__.show()
blas = "mkl" if "BLAS_INFO=mkl" in config or "USE_MKL=ON" in config else "openblas" if "open" in config.lower() else "other"
print(json.dumps({"torch": torch.__version__, "blas": blas, "matmul_gflops": matmul_gflops()}))
