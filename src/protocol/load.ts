import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SplitTrainingClient } from './messages.js';

const PROTO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'protos', 'flglm.proto');

/** 256 MiB messages and a 16 MiB flow-control window: activations of real models are large. */
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_send_message_length': 256 * 1024 * 1024,
  'grpc.max_receive_message_length': 256 * 1024 * 1024,
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
  // A client runs ONNX Runtime on its main thread, so while a real-sized model compiles or steps
  // (SmolLM2-135M: 13.6 s per LoRA step on 2 cores, longer to compile) it cannot answer pings: a
  // 10 s keepalive timeout dropped healthy clients there (measured, npm run bench -- real-shapes).
  // Dead peers are still caught by the protocol's own client_timeout_ms.
  'grpc.keepalive_time_ms': 30000,
  'grpc.keepalive_timeout_ms': 120000,
};

let cached: grpc.GrpcObject | null = null;

export type SplitTrainingConstructor = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => SplitTrainingClient;

export function loadProtocol(): { service: grpc.ServiceDefinition; Client: SplitTrainingConstructor } {
  if (!cached) {
    const def = protoLoader.loadSync(PROTO, {
      keepCase: false,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    cached = grpc.loadPackageDefinition(def);
  }
  const ns = (cached.flglm as grpc.GrpcObject).v1 as grpc.GrpcObject;
  const Client = ns.SplitTraining as grpc.ServiceClientConstructor;
  return { service: Client.service, Client: Client as unknown as SplitTrainingConstructor };
}
