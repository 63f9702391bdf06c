import { SplitSessionError } from '../split-generate.js';

/**
 * An error as the OpenAI API answers it: an HTTP status and `{error: {message, type, param, code}}`.
 * Clients (the official SDKs) turn the status into their error classes (BadRequestError,
 * RateLimitError, ...) and show `message`, so each says what was wrong and what to do.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  get body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, 'invalid_request_error', param, code);

/**
 * What a failure inside generation answers: the trunk refusing for capacity is 429 (retry later),
 * the trunk unreachable 503, a request the trunk refuses for its limits 400; anything else is a 500
 * with its one-line message (the endpoint itself stays up).
 */
export function apiErrorOf(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const message = e instanceof Error ? e.message.split('\n')[0] : String(e);
  if (e instanceof SplitSessionError) {
    if (e.failure === 'busy') return new ApiError(429, message, 'rate_limit_error', null, 'server_busy');
    if (e.failure === 'unreachable') return new ApiError(503, message, 'server_error', null, 'trunk_unreachable');
    if (e.failure === 'refused') return badRequest(message, null, 'refused_by_trunk');
    return new ApiError(502, message, 'server_error', null, 'trunk_error');
  }
  return new ApiError(500, message, 'server_error', null, 'internal_error');
}
