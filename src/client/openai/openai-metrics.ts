import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineResult } from './engine.js';

/** Prometheus metrics of the OpenAI endpoint (GET /metrics): requests, tokens in and out, time to first token, tokens/s. */
export class OpenAiMetrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'flglm_openai_requests_total',
    help: 'Requests answered, by endpoint and HTTP status',
    labelNames: ['endpoint', 'status'],
    registers: [this.registry],
  });
  private readonly tokensIn = new Counter({
    name: 'flglm_openai_prompt_tokens_total',
    help: 'Prompt tokens of the requests generated for',
    registers: [this.registry],
  });
  private readonly tokensOut = new Counter({
    name: 'flglm_openai_completion_tokens_total',
    help: 'Tokens generated',
    registers: [this.registry],
  });
  private readonly firstToken = new Histogram({
    name: 'flglm_openai_time_to_first_token_seconds',
    help: "Seconds from a request's arrival to its first generated token",
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly rate = new Histogram({
    name: 'flglm_openai_tokens_per_second',
    help: "A request's generated tokens per second after its first token",
    buckets: [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'flglm_openai_requests_in_flight',
    help: 'Generation requests being served now',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'flglm_openai_' });
  }

  answered(endpoint: string, status: number | 'cancelled'): void {
    this.requests.inc({ endpoint, status: String(status) });
  }

  generated(x: EngineResult): void {
    this.tokensIn.inc(x.promptTokens);
    this.tokensOut.inc(x.completionTokens);
    if (x.firstTokenS === null) return;
    this.firstToken.observe(x.firstTokenS);
    const decodeS = x.seconds - x.firstTokenS;
    if (x.completionTokens > 1 && decodeS > 0) this.rate.observe((x.completionTokens - 1) / decodeS);
  }
}
