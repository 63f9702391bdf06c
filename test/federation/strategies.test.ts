import { weightedAverage, type ClientUpdate, type Params } from '../../src/federation/strategies/strategy.js';
import {
  createClientHalf,
  createStrategy,
  STRATEGY_NAMES,
  strategyTraits,
} from '../../src/federation/strategies/lookup.js';
import { strategySchema } from '../../src/config/schema.js';
import { addProximalGradient } from '../../src/federation/strategies/fedprox.js';
import { Relay } from '../../src/federation/strategies/relay.js';
import { parseConfigText } from '../../src/config/load.js';
import { CONTROL_DELTA_PREFIX, CONTROL_PREFIX, ScaffoldClient } from '../../src/federation/strategies/scaffold.js';
import { splitOptimizerState } from '../../src/federation/optimizer-handoff.js';

const p = (o: Record<string, number[]>): Params =>
  new Map(Object.entries(o).map(([k, v]) => [k, Float32Array.from(v)]));
const u = (clientId: string, numExamples: number, params: Params): ClientUpdate => ({ clientId, numExamples, params });
const strategy = (o: Record<string, unknown>) => createStrategy(strategySchema.parse(o));
const close = (a: Params, b: Record<string, number[]>) => {
  for (const [k, v] of Object.entries(b)) v.forEach((x, i) => expect(a.get(k)![i]).toBeCloseTo(x, 6));
};

describe('strategies, checked against values computed by hand', () => {
  test("the schema's names are the registry's, and each makes a strategy", () => {
    expect(strategySchema.unwrap().shape.name.unwrap().options).toEqual(STRATEGY_NAMES);
    for (const name of STRATEGY_NAMES) expect(typeof strategy({ name }).aggregate).toBe('function');
  });

  test('FedAvg: sample-weighted mean; equal weights when no client reports samples', () => {
    const fedavg = strategy({ name: 'fedavg' });
    close(fedavg.aggregate(1, [u('a', 1, p({ w: [1, 2] })), u('b', 3, p({ w: [5, 6] }))], null), { w: [4, 5] });
    close(fedavg.aggregate(1, [u('a', 0, p({ w: [1, 2] })), u('b', 0, p({ w: [5, 6] }))], null), { w: [3, 4] });
    expect(() =>
      weightedAverage([
        { weight: 1, params: p({ w: [1] }) },
        { weight: 1, params: p({ w: [1, 2] }) },
      ]),
    ).toThrow(/differently shaped/);
  });

  test('FedMedian: coordinate-wise median, blind to claimed weights and to a minority of extreme updates', () => {
    const median = strategy({ name: 'fedmedian' });
    close(
      median.aggregate(
        1,
        [u('a', 1, p({ w: [1, 20] })), u('b', 1, p({ w: [3, -5] })), u('evil', 1e15, p({ w: [1e30, -1e30] }))],
        null,
      ),
      { w: [3, -5] },
    );
    close(
      median.aggregate(
        1,
        [
          u('a', 1, p({ w: [1, 2] })),
          u('b', 1, p({ w: [2, 4] })),
          u('c', 1, p({ w: [3, 6] })),
          u('d', 1, p({ w: [10, 8] })),
        ],
        null,
      ),
      { w: [2.5, 5] },
    );
    expect(() => median.aggregate(1, [u('a', 1, p({ w: [1] })), u('b', 1, p({ w: [1, 2] }))], null)).toThrow(
      /differently shaped/,
    );
  });

  test('trimmed mean: per coordinate, floor(trim n) dropped at each end, the rest averaged unweighted', () => {
    const trimmed = strategy({ name: 'trimmed_mean', trim: 0.2 });
    // n = 5, k = 1: [1, 2, 3, 4, 100] -> mean(2, 3, 4) = 3; [-1e30, 5, 6, 7, 8] -> mean(5, 6, 7) = 6.
    const five = [
      u('a', 1, p({ w: [1, 8] })),
      u('b', 1, p({ w: [2, 5] })),
      u('evil', 1e15, p({ w: [100, -1e30] })),
      u('c', 1, p({ w: [3, 6] })),
      u('d', 1, p({ w: [4, 7] })),
    ];
    close(trimmed.aggregate(1, five, null), { w: [3, 6] });
    // n = 4, k = floor(0.8) = 0: the plain unweighted mean.
    close(trimmed.aggregate(1, five.slice(0, 2).concat(five.slice(3)), null), { w: [2.5, 6.5] });
    expect(() => trimmed.aggregate(1, [u('a', 1, p({ w: [1] })), u('b', 1, p({ w: [1, 2] }))], null)).toThrow(
      /differently shaped/,
    );
  });

  test('Krum and multi-Krum: the updates nearest their n - f - 2 neighbours, by hand', () => {
    // f = 1, n = 5: each score sums the 2 smallest squared distances to the others (w and v together).
    // a: 1 + 6.25 = 7.25; b: 1 + 2.25 = 3.25; c: 0.25 + 2.25 = 2.5; d: 0.25 + 4 = 4.25; evil: far.
    const five = [
      u('a', 1, p({ w: [0], v: [0] })),
      u('b', 1, p({ w: [1], v: [0] })),
      u('c', 1, p({ w: [2.5], v: [0] })),
      u('d', 1, p({ w: [3], v: [0] })),
      u('evil', 1e15, p({ w: [100], v: [-50] })),
    ];
    close(strategy({ name: 'krum', byzantine: 1 }).aggregate(1, five, null), { w: [2.5], v: [0] });
    // multi-Krum, m = 3: c, b, d -> mean 6.5 / 3; m = 10 is capped at n - f = 4: c, b, d, a.
    close(strategy({ name: 'krum', byzantine: 1, krum_select: 3 }).aggregate(1, five, null), { w: [6.5 / 3] });
    close(strategy({ name: 'krum', byzantine: 1, krum_select: 10 }).aggregate(1, five, null), { w: [1.625] });
    expect(() => strategy({ name: 'krum', byzantine: 1 }).aggregate(1, five.slice(0, 4), null)).toThrow(
      /4 updates cannot tolerate byzantine: 1 \(it needs 2f \+ 3 = 5\)/,
    );
    const r = parseConfigText('federation: {clients: 3, strategy: {name: krum, byzantine: 1}}\n');
    expect(r.ok ? [] : r.problems.map((x) => `${x.path}: ${x.message}`)).toEqual([
      'federation.strategy.byzantine: krum with byzantine: 1 needs at least 2f + 3 = 5 clients, federation.clients is 3; lower byzantine or add clients',
    ]);
  });

  test('FedDyn server: round 1 is FedAvg; then h -= alpha |S|/N mean_w(w_k - w_t), w = mean_w - h / alpha; restorable', () => {
    const make = () => createStrategy(strategySchema.parse({ name: 'feddyn', mu: 0.5 }), 2);
    const s = make();
    expect(s.configureRound(1, [], null).config('a')).toEqual({ feddyn_alpha: 0.5, feddyn_dynamic: false });
    close(s.aggregate(1, [u('a', 1, p({ w: [0] })), u('b', 1, p({ w: [2] }))], null), { w: [1] });
    expect(s.configureRound(2, [], p({ w: [1] })).config('a')).toEqual({ feddyn_alpha: 0.5, feddyn_dynamic: true });
    // Weights 1 and 3: mean 3.5; h = -0.5 * 2/2 * (3.5 - 1) = -1.25; w = 3.5 + 1.25 / 0.5 = 6.
    close(s.aggregate(2, [u('a', 1, p({ w: [2] })), u('b', 3, p({ w: [4] }))], p({ w: [1] })), { w: [6] });
    const restored = make();
    restored.restore(new Map([...s.state()].map(([k, v]) => [k, Float32Array.from(v)])));
    // One of N = 2: h = -1.25 - 0.5 * 1/2 * (5 - 6) = -1; w = 5 + 1 / 0.5 = 7.
    close(restored.aggregate(3, [u('a', 1, p({ w: [5] }))], p({ w: [6] })), { w: [7] });
  });

  test('FedDyn client: grad += alpha (w - w_t) - g_k; at round end g_k -= alpha (w_k - w_t), from round 2 on', () => {
    const half = createClientHalf(strategySchema.parse({ name: 'feddyn' }))!;
    const round = (start: number[], dynamic: boolean) => {
      const params = p({ w: start });
      half.startRound!({
        params,
        start: () => p({ w: start }),
        config: { feddyn_alpha: 0.5, feddyn_dynamic: dynamic },
      });
      return params;
    };
    let params = round([1], false);
    params.get('w')!.set([3]);
    const g1 = p({ w: [0.2] });
    half.correctGradient!(g1, params);
    close(g1, { w: [0.2 + 0.5 * 2] });
    expect(half.finishRound!(params)).toEqual([]); // round 1: g_k stays 0
    params = round([1], true);
    params.get('w')!.set([3]);
    half.finishRound!(params); // g_k = -0.5 * (3 - 1) = -1
    params = round([2], true);
    const g2 = p({ w: [0] });
    half.correctGradient!(g2, params); // at w = w_t: only -g_k
    close(g2, { w: [1] });
  });

  test('FedAvgM: v = beta v + Delta; x += lr v', () => {
    const s = strategy({ name: 'fedavgm', server_lr: 1, momentum: 0.9 });
    const x1 = s.aggregate(2, [u('a', 1, p({ w: [1, 2] }))], p({ w: [0, 0] }));
    close(x1, { w: [1, 2] });
    close(s.aggregate(3, [u('a', 1, p({ w: [1, 2] }))], x1), { w: [1.9, 3.8] }); // Delta 0, v = 0.9 [1, 2]
  });

  test('FedAdam, FedYogi, FedAdagrad: first and second server steps', () => {
    const opts = { server_lr: 0.1, betas: [0.9, 0.99], tau: 1e-3 };
    // Step 1 from x = 0 with Delta = 1: m = 0.1; v = 0.01 (Adam, Yogi from v0 = 0) or 1 (Adagrad).
    const adam = strategy({ name: 'fedadam', ...opts });
    const yogi = strategy({ name: 'fedyogi', ...opts });
    const adagrad = strategy({ name: 'fedadagrad', ...opts });
    const first = (s: typeof adam) => s.aggregate(2, [u('a', 1, p({ w: [1] }))], p({ w: [0] }));
    close(first(adam), { w: [(0.1 * 0.1) / (0.1 + 1e-3)] });
    close(first(yogi), { w: [(0.1 * 0.1) / (0.1 + 1e-3)] });
    close(first(adagrad), { w: [(0.1 * 0.1) / (1 + 1e-3)] });
    // Step 2 with Delta = 0.5: m = 0.14; Adam v = 0.99*0.01 + 0.01*0.25 = 0.0124; Yogi v = 0.01 + 0.01*0.25 = 0.0125.
    close(adam.aggregate(3, [u('a', 1, p({ w: [0.5] }))], p({ w: [0] })), {
      w: [(0.1 * 0.14) / (Math.sqrt(0.0124) + 1e-3)],
    });
    close(yogi.aggregate(3, [u('a', 1, p({ w: [0.5] }))], p({ w: [0] })), {
      w: [(0.1 * 0.14) / (Math.sqrt(0.0125) + 1e-3)],
    });
    close(adagrad.aggregate(3, [u('a', 1, p({ w: [0.5] }))], p({ w: [0] })), {
      w: [(0.1 * 0.14) / (Math.sqrt(1.25) + 1e-3)],
    });
  });

  test('server state survives a checkpoint: a restored strategy continues exactly', () => {
    const opts = { name: 'fedadam', server_lr: 0.1 };
    const a = strategy(opts);
    a.aggregate(2, [u('a', 1, p({ w: [1, -1] }))], p({ w: [0, 0] }));
    const b = strategy(opts);
    b.restore(new Map([...a.state()].map(([k, v]) => [k, Float32Array.from(v)])));
    const next = [u('a', 1, p({ w: [0.3, 0.2] }))];
    expect(b.aggregate(3, next, p({ w: [0, 0] }))).toEqual(a.aggregate(3, next, p({ w: [0, 0] })));
  });

  test('round 1 of a server optimizer is plain FedAvg (no global parts to step from yet)', () => {
    close(strategy({ name: 'fedadam' }).aggregate(1, [u('a', 1, p({ w: [2] })), u('b', 1, p({ w: [4] }))], null), {
      w: [3],
    });
  });

  test('FedProx: clients are told mu, and the proximal gradient is mu (w - anchor)', () => {
    const plan = strategy({ name: 'fedprox', mu: 0.5 }).configureRound(1, [{ id: 'a', weight: 1 }], null);
    expect(plan.config('a')).toEqual({ proximal_mu: 0.5 });
    const grads = p({ w: [0, 1] });
    addProximalGradient(grads, p({ w: [2, 2] }), p({ w: [1, 3] }), 0.5);
    close(grads, { w: [0.5, 0.5] });
    // The client half: anchored at the round's start, pulled by the mu the round's config gives.
    const half = createClientHalf(strategySchema.parse({ name: 'fedprox' }))!;
    const params = p({ w: [1, 3] });
    half.startRound!({ params, start: () => p({ w: [1, 3] }), config: { proximal_mu: 0.5 } });
    params.get('w')!.set([2, 2]);
    const g = p({ w: [0, 1] });
    half.correctGradient!(g, params);
    close(g, { w: [0.5, 0.5] });
  });

  test('SCAFFOLD server: x += lr_g mean_w(y - x); c += sum(delta_c) / N; c travels with the parts; restorable', () => {
    const s = createStrategy(strategySchema.parse({ name: 'scaffold', server_lr: 0.5 }), 4);
    expect(s.configureRound(1, [], null).config('a')).toEqual({ scaffold: true });
    expect([...s.uploadSpec!(new Map([['w', 2]]))]).toEqual([
      ['w', 2],
      [`${CONTROL_DELTA_PREFIX}w`, 2],
    ]);
    const d = (v: number[]) => ({ [`${CONTROL_DELTA_PREFIX}w`]: v });
    // 2 of N = 4 clients; weights 1 and 3: mean y = [4, 5]; x = [0, 1] -> x + 0.5 ([4, 5] - [0, 1]) = [2, 3].
    // c = 0 + ([1, 2] + [3, -2]) / 4 = [1, 0].
    const r1 = s.aggregate(
      2,
      [u('a', 1, p({ w: [1, 2], ...d([1, 2]) })), u('b', 3, p({ w: [5, 6], ...d([3, -2]) }))],
      p({ w: [0, 1] }),
    );
    close(r1, { w: [2, 3], [`${CONTROL_PREFIX}w`]: [1, 0] });
    expect([...r1.keys()].sort()).toEqual([`${CONTROL_PREFIX}w`, 'w']);
    const restored = createStrategy(strategySchema.parse({ name: 'scaffold', server_lr: 0.5 }), 4);
    restored.restore(new Map([...s.state()].map(([k, v]) => [k, Float32Array.from(v)])));
    const next = [u('a', 1, p({ w: [2, 3], ...d([4, 4]) }))];
    // c = [1, 0] + [4, 4] / 4 = [2, 1]; x = [2, 3] (the client did not move).
    close(restored.aggregate(3, next, p({ w: [2, 3] })), { w: [2, 3], [`${CONTROL_PREFIX}w`]: [2, 1] });
  });

  test('SCAFFOLD client: g + c - c_i during the round, then c_i = mean raw gradient and delta_c = c_i(new) - c_i(old)', () => {
    const client = new ScaffoldClient();
    expect(client.incoming('w')).toBeUndefined(); // not a control variate
    expect(client.incoming(`${CONTROL_PREFIX}w`)).toBe('w');
    client.receive(`${CONTROL_PREFIX}w`, Float32Array.of(1, -1));
    const g1 = p({ w: [2, 4] });
    client.correctGradient(g1); // c_i = 0: g + c
    close(g1, { w: [3, 3] });
    const g2 = p({ w: [4, 0] });
    client.correctGradient(g2);
    close(g2, { w: [5, -1] });
    const [[name, delta]] = client.finishRound(p({ w: [0, 0] }));
    expect(name).toBe(`${CONTROL_DELTA_PREFIX}w`);
    expect(Array.from(delta)).toEqual([3, 2]); // mean raw gradient [3, 2] - old c_i 0
    const g3 = p({ w: [0, 0] });
    client.correctGradient(g3); // now c - c_i = [1 - 3, -1 - 2]
    close(g3, { w: [-2, -3] });
    close(new Map(client.finishRound(p({ w: [0, 0] }))), { [`${CONTROL_DELTA_PREFIX}w`]: [-3, -2] }); // mean [0, 0] - [3, 2]
  });

  test('client_optimizer: average takes the optimizer entries apart from the parameters', () => {
    const [plain, moments] = splitOptimizerState([
      u('a', 2, p({ w: [1], 'optimizer.w#0': [4], 'optimizer.step': [3] })),
    ]);
    expect([...plain[0].params.keys()]).toEqual(['w']);
    expect([...moments[0].params.keys()]).toEqual(['optimizer.w#0', 'optimizer.step']);
    expect(moments[0].numExamples).toBe(2);
  });

  test('relay: the round result is the last client of the hand-off chain', () => {
    const relay = strategy({ name: 'relay' });
    expect(strategyTraits('relay').handoff).toBe(true);
    close(relay.aggregate(1, [u('b', 1, p({ w: [1] })), u('a', 100, p({ w: [7] }))], null), { w: [7] });
  });
});

test('the schema refuses relay outside sequential mode, naming the fix', () => {
  const r = parseConfigText('federation: {mode: hierarchical, strategy: {name: relay}}\n');
  expect(r.ok).toBe(false);
  expect(r.ok ? [] : r.problems).toEqual([
    expect.objectContaining({
      path: 'federation.strategy.name',
      message: expect.stringMatching(/relay hands the client parts .* needs federation\.mode: sequential/),
    }),
  ]);
  expect(parseConfigText('federation: {mode: sequential, strategy: {name: relay}}\n').ok).toBe(true);
});

test('relay turns follow the data: smooth weighted round-robin, carried across rounds', () => {
  const relay = new Relay();
  const clients = [
    { id: 'a', weight: 6 },
    { id: 'b', weight: 3 },
    { id: 'c', weight: 1 },
  ];
  const order = [...relay.turnOrder(clients, 5), ...relay.turnOrder(clients, 5)];
  // By hand: credits +6/+3/+1 per turn, the largest takes the turn and pays 10 (ties: first listed).
  expect(order).toEqual(['a', 'b', 'a', 'a', 'b', 'a', 'c', 'a', 'b', 'a']);
  expect(order.filter((x) => x === 'a')).toHaveLength(6);
});
