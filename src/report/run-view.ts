/**
 * What a run's records say, folded into one view: the federation's state, its curves, the split
 * step's timeline and the privacy measures. Pure and import-free, so report.html (in Node) and the
 * live dashboard (in the browser, record by record) compute the same thing from the same records:
 * metrics.jsonl (step, round, eval, drop, cut_off, join, timeline, trunk) and, once a run is done,
 * its summary.json and baseline-losses.json.
 */
export type RunRecord = Record<string, unknown>;

export interface RunMeta {
  name: string;
  mode: string;
  strategy: string;
  rounds: number;
  clients: number;
  /** How the run stands: live while its records grow, finished (or failed) once it ended. */
  state: 'live' | 'finished' | 'failed';
}

export type ClientState = 'joined' | 'training' | 'waiting' | 'dropped' | 'revoked' | 'finished';

export interface ClientRow {
  id: string;
  state: ClientState;
  /** Epoch ms of this client's last record. */
  lastSeen: number;
  steps: number;
  loss: number;
}

export interface Span {
  kind: string;
  start: number;
  end: number;
}

export interface RunView {
  meta: RunMeta;
  /** Rounds completed, and the round in progress (its step records have started). */
  roundsDone: number;
  round: number;
  clients: ClientRow[];
  /** Trunk replicas seen (0, 1, ...), each a worker thread or a sub-server. */
  replicas: number[];
  /** Training loss per client and their running mean, x = federation steps so far. */
  loss: { label: string; points: [number, number][] }[];
  baselineLoss: [number, number][];
  /** Held-out accuracy and loss against tokens federated, and the centralized baseline's. */
  evals: { label: string; points: { tokens: number; accuracy: number; loss: number }[] }[];
  rounds: { round: number; wall_s: number; bytes_up: number; bytes_down: number; train_loss: number }[];
  /** The latest steps as spans per client, and the trunk replicas' busy intervals over the same window. */
  timeline: { rows: { label: string; spans: Span[] }[]; t0: number; t1: number };
  /** Seconds per secure-aggregation phase, per round. */
  secure: { round: number; phases: Record<string, number> }[];
  attack?: { token_accuracy: number; rouge_l_f1: number; sigma: number; captured_steps: number };
  summary?: RunRecord;
}

const num = (v: unknown) => (typeof v === 'number' ? v : NaN);
const str = (v: unknown) => (typeof v === 'string' ? v : String(v ?? ''));

/** A mean over the last `k` values, for a curve that shows a trend rather than every step's noise. */
export function smooth(ys: number[], k = 5): number[] {
  return ys.map((_, i) => {
    let sum = 0,
      n = 0;
    for (let j = Math.max(0, i - k + 1); j <= i; j++)
      if (Number.isFinite(ys[j])) {
        sum += ys[j];
        n++;
      }
    return sum / n;
  });
}

/** Timeline records over the last `steps` steps per client (the newest round's, typically). */
function timelineOf(records: RunRecord[], steps: number): RunView['timeline'] {
  const tl = records.filter((r) => r.type === 'timeline');
  if (tl.length === 0) return { rows: [], t0: 0, t1: 0 };
  const recent = tl.slice(-steps * new Set(tl.map((r) => r.client)).size);
  const spansOf = (r: RunRecord): Span[] =>
    Object.entries((r.spans ?? {}) as Record<string, [number, number]>).map(([kind, [start, end]]) => ({
      kind,
      start,
      end,
    }));
  const all = recent.flatMap(spansOf);
  const t0 = Math.min(...all.map((s) => s.start)),
    t1 = Math.max(...all.map((s) => s.end));
  const listOf = <K>(m: Map<K, Span[]>, k: K) => m.get(k) ?? m.set(k, []).get(k)!;
  const byClient = new Map<string, Span[]>();
  for (const r of recent) listOf(byClient, str(r.client)).push(...spansOf(r));
  const trunk = new Map<number, Span[]>();
  for (const r of records)
    if (r.type === 'trunk' && num(r.end) >= t0 && num(r.start) <= t1)
      listOf(trunk, num(r.replica)).push({ kind: `trunk ${str(r.op)}`, start: num(r.start), end: num(r.end) });
  const rows = [...byClient.keys()].sort().map((c) => ({ label: c, spans: byClient.get(c)! }));
  for (const k of [...trunk.keys()].sort((a, b) => a - b)) rows.push({ label: `trunk ${k}`, spans: trunk.get(k)! });
  return { rows, t0, t1 };
}

export function runView(
  meta: RunMeta,
  records: RunRecord[],
  o: { now?: number; summary?: RunRecord; baselineLosses?: number[]; timelineSteps?: number } = {},
): RunView {
  const now = o.now ?? Date.now();
  const clients = new Map<string, ClientRow>();
  const row = (id: string, t: number) => {
    const c = clients.get(id) ?? { id, state: 'joined' as ClientState, lastSeen: 0, steps: 0, loss: NaN };
    c.lastSeen = Math.max(c.lastSeen, t || 0);
    clients.set(id, c);
    return c;
  };
  const perClient = new Map<string, [number, number][]>();
  const global: [number, number][] = [];
  const recent: number[] = [];
  let recentSum = 0;
  let steps = 0,
    round = 0,
    roundsDone = 0;
  const rounds: RunView['rounds'] = [];
  const secure: RunView['secure'] = [];
  const fedEval: RunView['evals'][number]['points'] = [];
  const replicas = new Set<number>();
  for (const r of records) {
    const t = num(r.time);
    if (r.type === 'step') {
      const c = row(str(r.client), t);
      steps++;
      c.steps++;
      c.loss = num(r.loss);
      if (c.state !== 'revoked') c.state = 'training';
      round = Math.max(round, num(r.round));
      (perClient.get(c.id) ?? perClient.set(c.id, []).get(c.id)!).push([steps, c.loss]);
      // The mean of the last 3 steps per client, kept as a running sum (64 clients x 1000s of steps).
      const k = 3 * Math.max(1, meta.clients);
      if (Number.isFinite(c.loss)) {
        recent.push(c.loss);
        recentSum += c.loss - (recent.length > k ? recent[recent.length - 1 - k] : 0);
      }
      if (recent.length) global.push([steps, recentSum / Math.min(k, recent.length)]);
    } else if (r.type === 'join') row(str(r.client), t).state = 'joined';
    else if (r.type === 'timeline') row(str(r.client), num(r.end));
    else if (r.type === 'drop') row(str(r.client), t).state = 'dropped';
    else if (r.type === 'cut_off') row(str(r.client), t).state = 'revoked';
    else if (r.type === 'trunk') replicas.add(num(r.replica));
    else if (r.type === 'eval' && Number.isFinite(num(r.accuracy)))
      fedEval.push({ tokens: num(r.tokens_seen), accuracy: num(r.accuracy), loss: num(r.loss) });
    else if (r.type === 'round') {
      roundsDone = Math.max(roundsDone, num(r.round));
      round = Math.max(round, roundsDone);
      rounds.push({
        round: num(r.round),
        wall_s: num(r.wall_s),
        bytes_up: num(r.bytes_up),
        bytes_down: num(r.bytes_down),
        train_loss: num(r.train_loss),
      });
      const end = (r.round_end ?? {}) as { secure_aggregation?: Record<string, number> };
      if (end.secure_aggregation) secure.push({ round: num(r.round), phases: end.secure_aggregation });
      for (const id of (r.clients ?? []) as string[]) {
        const c = row(id, t);
        if (c.state === 'training') c.state = 'waiting';
      }
    }
  }
  const done = meta.state !== 'live';
  for (const c of clients.values()) {
    // A client whose last step is more than 3 s old waits (for its turn, the round's end, the others).
    if (c.state === 'training' && now - c.lastSeen > 3000) c.state = 'waiting';
    if (done && (c.state === 'training' || c.state === 'waiting')) c.state = 'finished';
  }
  const ids = [...perClient.keys()].sort();
  const summary = o.summary;
  const baseline = (summary?.baseline ?? {}) as { curve?: { tokens: number; accuracy: number; loss: number }[] };
  const attack = summary?.attack as RunView['attack'] | undefined;
  const evals: RunView['evals'] = [{ label: `federated (${meta.mode}, ${meta.strategy})`, points: fedEval }];
  if (baseline.curve?.length) evals.push({ label: 'centralized baseline', points: baseline.curve });
  return {
    meta,
    roundsDone,
    round: Math.min(Math.max(round, roundsDone), meta.rounds || Infinity),
    clients: [...clients.values()].sort((a, b) => (a.id < b.id ? -1 : 1)),
    replicas: [...replicas].sort((a, b) => a - b),
    loss: [
      ...ids.map((id) => {
        const p = perClient.get(id)!;
        const s = smooth(p.map(([, v]) => v));
        return { label: id, points: p.map(([x], i) => [x, s[i]] as [number, number]) };
      }),
      { label: 'global (mean of the last steps)', points: global },
    ],
    baselineLoss: smooth(o.baselineLosses ?? []).map((v, i) => [i + 1, v]),
    evals,
    rounds,
    timeline: timelineOf(records, o.timelineSteps ?? 2),
    secure,
    ...(attack ? { attack } : {}),
    ...(summary ? { summary } : {}),
  };
}
