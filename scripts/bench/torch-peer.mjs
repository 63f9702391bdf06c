// PyTorch as a side-by-side peer, at its best on this machine. Every interpreter given (or found) that
// imports torch is measured: its BLAS (MKL or OpenBLAS), and for OpenBLAS the kernel it picked by
// itself (OPENBLAS_VERBOSE=2; Debian's OpenBLAS falls back to the generic `Prescott` kernel on CPUs
// that report a generic model name, ~65 instead of ~330 GFLOP/s, and chose `Haswell` on an AVX-512
// EPYC where `Cooperlake` is 1.9x faster) and every kernel the CPU's flags allow (OPENBLAS_CORETYPE).
// Each interpreter runs with its fastest kernel; the benchmarks then time their step with each and
// say which was fastest and what the others did.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './common.mjs';

const probe = join(root, 'scripts', 'bench', 'torch_blas.py');

/** OpenBLAS kernels this CPU can run, best first (from /proc/cpuinfo flags). */
export function openblasKernels() {
  let flags = new Set(),
    vendor = '';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    flags = new Set((/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '').split(/\s+/));
    vendor = /^vendor_id\s*:\s*(.*)$/m.exec(info)?.[1] ?? '';
  } catch {
    /* not Linux */
  }
  const k = [];
  if (flags.has('avx512_bf16')) k.push('Cooperlake');
  if (flags.has('avx512f') && flags.has('avx512bw') && flags.has('avx512vl')) k.push('SkylakeX');
  if (flags.has('avx2') && flags.has('fma'))
    k.push(vendor === 'AuthenticAMD' ? 'Zen' : 'Haswell', vendor === 'AuthenticAMD' ? 'Haswell' : 'Zen');
  if (flags.has('avx')) k.push('Sandybridge');
  return k;
}

function measure(python, threads, env = {}) {
  const r = spawnSync(python, [probe, String(threads)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: String(threads), ...env },
  });
  if (r.status !== 0) return null;
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  // OPENBLAS_VERBOSE also makes numpy's own OpenBLAS speak: the kernel counts only for torch on OpenBLAS.
  const core = out.blas === 'openblas' ? /Core:\s*(\S+)/.exec(r.stderr ?? '')?.[1] : undefined;
  return { ...out, ...(core ? { openblas_core: core } : {}) };
}

/**
 * Every interpreter among `pythons` (default: $FLGLM_TORCH_PYTHON, /usr/bin/python3, python3) that
 * imports torch, each with its fastest float32 MatMul setup (for OpenBLAS: the best kernel the CPU
 * allows): { setups: [{ python, env, label, blas, matmul_gflops }], candidates, note? }. Which
 * interpreter is the peer is for the benchmark to decide by its own step time: a faster GEMM does not
 * make a faster training step (Debian's torch 1.13 has the fastest GEMM on some machines and slower
 * elementwise kernels than a current wheel).
 */
export function torchSetups({ pythons, threads }) {
  const list = [
    ...new Set(
      (pythons?.length ? pythons : [process.env.FLGLM_TORCH_PYTHON, '/usr/bin/python3', 'python3']).filter(Boolean),
    ),
  ];
  const candidates = [],
    setups = [];
  for (const python of list) {
    if (python.includes('/') && !existsSync(python)) continue;
    const auto = measure(python, threads, { OPENBLAS_VERBOSE: '2' });
    if (!auto) continue;
    const mine = [
      {
        python,
        env: {},
        label: `PyTorch ${auto.torch} (${auto.blas}${auto.openblas_core ? `, OpenBLAS's own choice: ${auto.openblas_core}` : ''})`,
        ...auto,
      },
    ];
    if (auto.blas === 'openblas') {
      for (const kernel of openblasKernels()) {
        const m = measure(python, threads, { OPENBLAS_CORETYPE: kernel, OPENBLAS_VERBOSE: '2' });
        if (m)
          mine.push({
            python,
            env: { OPENBLAS_CORETYPE: kernel },
            label: `PyTorch ${m.torch} (OpenBLAS, OPENBLAS_CORETYPE=${kernel})`,
            ...m,
          });
      }
    }
    candidates.push(...mine);
    setups.push(mine.reduce((a, b) => (b.matmul_gflops > a.matmul_gflops ? b : a)));
  }
  const note = setups.length
    ? undefined
    : `no PyTorch found in ${list.join(', ')}: python3 -m venv .venv-bench && .venv-bench/bin/pip install torch transformers peft (or apt-get install python3-torch libopenblas0-pthread), then --python .venv-bench/bin/python`;
  return {
    setups,
    candidates: candidates.map(({ label, matmul_gflops, python }) => ({
      label,
      python,
      matmul_gflops: Math.round(matmul_gflops),
    })),
    note,
  };
}
