import { spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { Job } from 'kubernetes-models/batch/v1';
import { ConfigMap, PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
import { parseConfigText } from '../../src/config/load.js';

// Rendered offline with kubectl's built-in kustomize and checked against the Kubernetes OpenAPI
// schemas (kubernetes-models ships them); skipped, saying so, where kubectl is not installed.
const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
const haveKubectl = kubectl.status === 0;
if (!haveKubectl) console.log('skipped: kubectl is not installed (deploy/k8s manifests not rendered)');
const maybe = haveKubectl ? test : test.skip;

const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  'batch/v1/Job': Job as never,
  'v1/ConfigMap': ConfigMap as never,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim as never,
  'v1/Service': Service as never,
};

maybe(
  'deploy/k8s renders with kustomize, every object is valid against the Kubernetes schemas, and the server runs as the docs say',
  () => {
    const r = spawnSync('kubectl', ['kustomize', 'deploy/k8s'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const objects = parseAllDocuments(r.stdout).map(
      (d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string }; [k: string]: unknown },
    );
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      expect.arrayContaining([
        'Job/flglm-server',
        'PersistentVolumeClaim/flglm-checkpoints',
        'Service/flglm-server',
        'Service/flglm-server-internal',
      ]),
    );
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      if (!Model) throw new Error(`no schema check for ${o.apiVersion} ${o.kind}`);
      expect(() => new Model(o as never).validate()).not.toThrow();
    }
    const job = objects.find((o) => o.kind === 'Job') as unknown as Job;
    const pod = job.spec!.template.spec!;
    const server = pod.containers[0];
    expect(server.args).toEqual(
      expect.arrayContaining([
        'server',
        '--resume-if-present',
        '--checkpoints=/data/checkpoints',
        '--health-port=50052',
        '--metrics-port=9464',
        '--pki=/kit/server',
      ]),
    );
    expect(server.readinessProbe?.grpc?.port).toBe(50052);
    expect(pod.securityContext?.runAsNonRoot).toBe(true);
    // The experiment the ConfigMap carries is a valid flglm config.
    const cm = objects.find((o) => o.kind === 'ConfigMap') as unknown as ConfigMap;
    const parsed = parseConfigText(cm.data!['experiment.yaml']);
    expect(parsed.ok ? [] : parsed.problems).toEqual([]);
    // The config map's generated name is the one the Job mounts.
    expect(pod.volumes!.find((v) => v.name === 'config')!.configMap!.name).toBe(cm.metadata!.name);
  },
);

maybe(
  'deploy/k8s/hierarchical adds sub-servers: an Indexed Job whose pod i runs kit s<i> against the parent, which waits for all of them',
  () => {
    const r = spawnSync('kubectl', ['kustomize', 'deploy/k8s/hierarchical'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const objects = parseAllDocuments(r.stdout).map(
      (d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string }; [k: string]: unknown },
    );
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      if (!Model) throw new Error(`no schema check for ${o.apiVersion} ${o.kind}`);
      expect(() => new Model(o as never).validate()).not.toThrow();
    }
    const job = (name: string) => objects.find((o) => o.kind === 'Job' && o.metadata.name === name) as unknown as Job;
    const subs = job('flglm-subserver').spec!;
    const expected = Number(
      job('flglm-server')
        .spec!.template.spec!.containers[0].args!.find((a) => a.startsWith('--expect-subs='))!
        .split('=')[1],
    );
    expect(subs.completionMode).toBe('Indexed');
    expect([subs.completions, subs.parallelism]).toEqual([expected, expected]);
    const sub = subs.template.spec!.containers[0];
    expect(sub.args).toEqual(
      expect.arrayContaining([
        'server',
        '--role=sub',
        '--pki=/kit/subservers/s$(SUB_INDEX)',
        '--parent=flglm-server-internal:50051',
      ]),
    );
    expect(sub.env!.find((e) => e.name === 'SUB_INDEX')!.valueFrom!.fieldRef!.fieldPath).toBe(
      "metadata.annotations['batch.kubernetes.io/job-completion-index']",
    );
    // The parent's federation port is reachable inside the cluster, where the sub-servers dial it.
    const internal = objects.find(
      (o) => o.kind === 'Service' && o.metadata.name === 'flglm-server-internal',
    ) as unknown as Service;
    expect(internal.spec!.ports!.map((p) => p.port)).toContain(50051);
    // The plan is hierarchical (relay would be refused in that mode) and valid.
    const cm = objects.find((o) => o.kind === 'ConfigMap') as unknown as ConfigMap;
    const parsed = parseConfigText(cm.data!['experiment.yaml']);
    expect(parsed.ok ? [] : parsed.problems).toEqual([]);
    if (parsed.ok)
      expect([parsed.config.federation.mode, parsed.config.federation.strategy.name]).toEqual([
        'hierarchical',
        'fedavg',
      ]);
  },
);
