/**
 * glibc malloc settings for flglm's processes: keep freed memory in the heap instead of returning it
 * to the kernel, so that the large buffers of every step (ONNX Runtime's outputs copied into fresh
 * ArrayBuffers, activations, gradients, messages) reuse pages that are already mapped.
 *
 * By default glibc serves allocations over 128 KiB-32 MiB with mmap and unmaps them on free, so every
 * step touches fresh pages and pays a page fault per 4 KiB. On a machine where faults are expensive
 * (this project's paravirtualised 2-core guests: ~30 µs each; the server of a federated Qwen2.5-0.5B
 * run spent ~40 % of its CPU time in the kernel) that is most of a step. Measured here, same machine,
 * one after the other: adding 1 to a 64 MB tensor, 400-900 ms per run -> 10 ms; a `small` 8 x 128
 * training step 0.39 / 0.36 s -> 0.31 / 0.27 s (peak RSS 633 -> 663 MiB); a 1-client split step
 * 2,086 -> 2,179 tokens/s (plaintext) and 1,787 -> 2,296 (mTLS + AES-GCM). `npm run bench -- malloc`
 * repeats the comparison.
 *
 * glibc reads these when a process starts, so they are set for the processes flglm starts (the
 * launcher's server and clients) and in the Docker image (which compose.yaml and deploy/k8s run);
 * set them yourself for a `flglm train` or `flglm server` you start by hand (docs/deploy.md). A value already in the
 * environment wins; FLGLM_SYSTEM_MALLOC=1 leaves glibc's defaults.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_MAX_: '0', // never serve an allocation by mmap: everything comes from the heap ...
  MALLOC_TRIM_THRESHOLD_: String(2 ** 36), // ... and the heap is never trimmed back to the kernel
};

/** `env` with the malloc settings added where not set (none with FLGLM_SYSTEM_MALLOC=1). */
export function withMallocEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (env.FLGLM_SYSTEM_MALLOC === '1') return env;
  const out = { ...env };
  for (const [k, v] of Object.entries(MALLOC_ENV)) if (out[k] === undefined) out[k] = v;
  return out;
}

/** Whether this process runs with the settings (what `flglm doctor` reports). */
export function mallocTuned(env: NodeJS.ProcessEnv = process.env): boolean {
  return Object.entries(MALLOC_ENV).every(([k, v]) => env[k] === v);
}
