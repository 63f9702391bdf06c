# What the PyTorch peers of the benchmarks share: this process's peak memory and torch's MatMul rate.
import resource, time

import torch


def peak_rss_mib():
    # VmHWM: this process's own high-water mark (getrusage's maxrss survives fork + exec, so a child
    # of a large parent would report the parent's size).
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def matmul_gflops(n=1024, runs=10):
    """The best of `runs` float32 n^3 MatMuls: says plainly which BLAS (and kernel) is behind torch."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        a @ b
        rates.append(2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return max(rates)
