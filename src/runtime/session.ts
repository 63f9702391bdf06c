import * as ort from 'onnxruntime-node';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Graph, Value, DType } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import { UserError } from '../util/errors.js';
import { mallocTuned } from '../util/malloc-env.js';
import { defaultThreads } from './threads.js';
import type { TensorData } from './tensor.js';

export type Device = 'cpu' | 'cuda';

export interface RuntimeOptions {
  device?: Device;
  /** ONNX Runtime intra-op threads; null or absent: one per physical core this process may use (`runtime/threads.ts`). */
  threads?: number | null;
  /**
   * Let ORT's worker threads spin while waiting for work (its default). Spinning wins for one busy
   * process; with several processes sharing the cores (a federation on one machine) it burns the
   * CPU that the others need, so federated processes turn it off.
   */
  spinning?: boolean;
  /** ONNX Runtime's CPU memory arena (`runtime.memory_arena`); auto (the default): off where malloc keeps freed memory (malloc-env.ts). */
  arena?: boolean | 'auto';
}

interface IoSpec {
  name: string;
  dtype: DType;
  shape: readonly number[];
}

/** Whether sessions use ORT's arena: as asked, else only where malloc would return freed memory to the kernel. */
export function useArena(arena: boolean | 'auto' | undefined): boolean {
  return typeof arena === 'boolean' ? arena : !mallocTuned();
}

let cudaFallbackReported = false;
let cudaLoadFailureReported = false;
const require = createRequire(import.meta.url);

/**
 * Whether the CUDA execution provider can load: onnxruntime-node lists `cuda` on linux/x64 even
 * when its provider libraries were never installed (`bundled: false`; npm's postinstall fetches
 * them unless skipped), so the library file must be there too.
 */
export function cudaAvailable(): boolean {
  const cuda = ort.listSupportedBackends().find((b) => b.name === 'cuda');
  if (!cuda) return false;
  if (cuda.bundled) return true;
  try {
    const bin = join(
      dirname(require.resolve('onnxruntime-node')),
      '..',
      'bin',
      'napi-v6',
      process.platform,
      process.arch,
    );
    return existsSync(join(bin, 'libonnxruntime_providers_cuda.so'));
  } catch {
    return false;
  }
}

/** Resolve the execution provider, falling back to CPU with one clear message. */
export function resolveDevice(
  device: Device | undefined,
  log: (msg: string) => void = (m) => console.error(m),
): Device {
  if (device !== 'cuda') return 'cpu';
  if (cudaAvailable()) return 'cuda';
  if (!cudaFallbackReported) {
    log(
      'flglm: --device cuda requested but this onnxruntime-node build has no CUDA provider; running on CPU. Fix: install the CUDA build of onnxruntime-node on a machine with an NVIDIA GPU.',
    );
    cudaFallbackReported = true;
  }
  return 'cpu';
}

/** A graph compiled into an ONNX Runtime session, with checked feeds. */
export class CompiledGraph {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputs: IoSpec[],
    readonly outputs: IoSpec[],
    readonly device: Device,
  ) {}

  static async create(graph: Graph, opts: RuntimeOptions = {}): Promise<CompiledGraph> {
    const device = resolveDevice(opts.device);
    const bytes = toOnnx(graph);
    // FLGLM_ORT_SPINNING=0|1 overrides the spinning choice (for tuning on a given machine).
    const envSpin = process.env.FLGLM_ORT_SPINNING;
    const spinning = envSpin === '0' ? false : envSpin === '1' ? true : opts.spinning;
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: [device],
      graphOptimizationLevel: 'all',
      // ORT's memory pattern plans one block per run from the first run's allocations; the arena
      // already reuses freed buffers. Off, a step costs the same in steady state and peaks lower
      // (measured, 8 x 128 training step: `small` full 0.22 s either way, 500 vs 795 MB; a
      // SmolLM2-135M-shaped LoRA step 2.3 s either way, 2.4 vs 4.0 GB), and the second run does not
      // pay for allocating the planned block (0.27 vs 0.83 s for `small`).
      enableMemPattern: false,
      ...(useArena(opts.arena) ? {} : { enableCpuMemArena: false }),
      intraOpNumThreads: opts.threads ?? defaultThreads(),
      interOpNumThreads: 1,
      ...(spinning === false
        ? { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } }
        : {}),
    };
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, sessionOptions);
    } catch (e) {
      if (device !== 'cuda') throw e;
      // The provider library is there but does not load (no NVIDIA driver, libcuda.so.1, or a CUDA
      // library missing from LD_LIBRARY_PATH; docs/gpu.md): say so once and run on the CPU.
      if (!cudaLoadFailureReported) {
        console.error(
          `flglm: the CUDA provider did not load (${(e as Error).message.split('\n')[0]}); running on CPU. Fix: docs/gpu.md`,
        );
        cudaLoadFailureReported = true;
      }
      return CompiledGraph.create(graph, { ...opts, device: 'cpu' });
    }
    const spec = (v: Value): IoSpec => ({ name: v.name, dtype: v.dtype, shape: v.shape });
    return new CompiledGraph(session, graph.inputs.map(spec), graph.outputs.map(spec), device);
  }

  /** Run with named feeds; every feed is checked against the graph before ORT sees it. */
  async run(feeds: Record<string, TensorData>): Promise<Record<string, TensorData>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const spec of this.inputs) {
      const t = feeds[spec.name];
      if (!t) throw new UserError(`missing input tensor "${spec.name}" (expected ${spec.dtype}[${spec.shape}])`);
      if (t.dtype !== spec.dtype)
        throw new UserError(`input tensor "${spec.name}" has dtype ${t.dtype}, the graph expects ${spec.dtype}`);
      if (t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
        throw new UserError(`input tensor "${spec.name}" has shape [${t.shape}], the graph expects [${spec.shape}]`);
      }
      ortFeeds[spec.name] = new ort.Tensor(t.dtype, t.data as ort.Tensor.DataType, t.shape);
    }
    for (const name of Object.keys(feeds)) {
      if (!this.inputs.some((s) => s.name === name))
        throw new UserError(
          `unknown input tensor "${name}"; the graph takes ${this.inputs.map((s) => s.name).join(', ')}`,
        );
    }
    const result = await this.session.run(ortFeeds);
    const out: Record<string, TensorData> = {};
    for (const spec of this.outputs) {
      const r = result[spec.name];
      out[spec.name] = { dtype: spec.dtype, shape: r.dims as number[], data: r.data as TensorData['data'] };
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
