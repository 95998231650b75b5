/**
 * One typed error per way a Kubernetes API call can fail, and the single
 * place where client-node's ApiException and fetch failures become them.
 * Callers branch on the class (or the is* helpers), never on numbers.
 */

/** The parts of a metav1.Status body that callers act on. */
export interface ApiStatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface ApiStatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: ApiStatusCause[];
  retryAfterSeconds?: number;
}

export interface ApiStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: ApiStatusDetails;
}

interface ApiErrorInit {
  /** HTTP status code; undefined when no response arrived. */
  code?: number;
  /** metav1.Status reason, e.g. NotFound, AlreadyExists, Invalid. */
  reason?: string;
  status?: ApiStatus;
  cause?: unknown;
}

/** Any failed API call. Subclasses name the failures callers handle. */
export class ApiError extends Error {
  readonly code: number | undefined;
  readonly reason: string | undefined;
  readonly status: ApiStatus | undefined;

  constructor(message: string, init: ApiErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.reason = init.reason;
    this.status = init.status;
  }
}

/** 404: the object (or its namespace, or the resource type) does not exist. */
export class NotFoundError extends ApiError {}

/**
 * 409: the write lost an optimistic-concurrency race (stale resourceVersion).
 * Nothing is wrong: re-read and try again, quietly.
 */
export class ConflictError extends ApiError {}

/** 409 on create: an object with that name exists already. */
export class AlreadyExistsError extends ConflictError {}

/** 422: the server rejected the object as invalid. Retrying the same write cannot succeed. */
export class InvalidError extends ApiError {
  /** Field-level causes, e.g. `{field: "spec.replicas", message: "..."}`. */
  get causes(): ApiStatusCause[] {
    return this.status?.details?.causes ?? [];
  }
}

/** 401: the credentials were not accepted. */
export class UnauthorizedError extends ApiError {}

/** 403: RBAC (or an admission plugin) refused the call. */
export class ForbiddenError extends ApiError {}

/** 410: the resourceVersion asked for is older than the server keeps; relist. */
export class GoneError extends ApiError {}

/** 5xx, 429, a timeout, or no response at all: worth retrying with backoff. */
export class TransientApiError extends ApiError {
  readonly retryAfterSeconds: number | undefined;

  constructor(message: string, init: ApiErrorInit & { retryAfterSeconds?: number } = {}) {
    super(message, init);
    this.retryAfterSeconds = init.retryAfterSeconds;
  }
}

/**
 * A problem with the object itself (a bad spec) that no retry can fix. The
 * controller records it and does not requeue the key.
 */
export class TerminalError extends Error {
  /** CamelCase reason suitable for status.reason, e.g. InvalidInput. */
  readonly reason: string;

  constructor(message: string, options: { reason?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TerminalError';
    this.reason = options.reason ?? 'InvalidSpec';
  }
}

const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/**
 * Maps anything a client-node call can throw to an ApiError subclass:
 * ApiException (`code`, `body` as JSON text or object, `headers`), the Watch
 * class's `statusCode` errors, undici network failures and request timeouts.
 * Errors that are already ApiErrors are returned unchanged.
 */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;

  const httpCode = httpStatusOf(err);
  if (httpCode !== undefined) {
    const status = parseStatus((err as { body?: unknown }).body);
    const headers = (err as { headers?: Record<string, string> }).headers;
    return fromHttpStatus(httpCode, status, headers, err);
  }

  if (isNetworkError(err)) {
    return new TransientApiError(`API server unreachable: ${describe(err)}`, { cause: err });
  }

  return new ApiError(`API call failed: ${describe(err)}`, { cause: err });
}

function fromHttpStatus(
  code: number,
  status: ApiStatus | undefined,
  headers: Record<string, string> | undefined,
  cause: unknown,
): ApiError {
  const reason = status?.reason;
  const message = status?.message ?? `API call failed with HTTP ${code}${reason ? ` (${reason})` : ''}`;
  const init: ApiErrorInit = { code, reason, status, cause };
  switch (code) {
    case 401:
      return new UnauthorizedError(message, init);
    case 403:
      return new ForbiddenError(message, init);
    case 404:
      return new NotFoundError(message, init);
    case 409:
      return reason === 'AlreadyExists' ? new AlreadyExistsError(message, init) : new ConflictError(message, init);
    case 410:
      return new GoneError(message, init);
    case 422:
      return new InvalidError(message, init);
    case 429:
      return new TransientApiError(message, { ...init, retryAfterSeconds: retryAfter(status, headers) });
    default:
      if (code >= 500) {
        return new TransientApiError(message, { ...init, retryAfterSeconds: retryAfter(status, headers) });
      }
      return new ApiError(message, init);
  }
}

function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { code, statusCode } = err as { code?: unknown; statusCode?: unknown };
  // ApiException puts the HTTP status in `code`; Node's system errors use
  // `code` for strings like ECONNREFUSED, which the number check excludes.
  if (typeof code === 'number' && code >= 100 && code < 600) return code;
  if (typeof statusCode === 'number' && statusCode >= 100 && statusCode < 600) return statusCode;
  return undefined;
}

function parseStatus(body: unknown): ApiStatus | undefined {
  let value: unknown = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return body.trim() === '' ? undefined : { message: body.trim() };
    }
  }
  if (typeof value !== 'object' || value === null) return undefined;
  return value as ApiStatus;
}

function retryAfter(status: ApiStatus | undefined, headers: Record<string, string> | undefined): number | undefined {
  const fromBody = status?.details?.retryAfterSeconds;
  if (typeof fromBody === 'number' && fromBody > 0) return fromBody;
  const header = headers?.['retry-after'] ?? headers?.['Retry-After'];
  if (header === undefined) return undefined;
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds > 0 ? seconds : undefined;
}

function isNetworkError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const name = (err as { name?: unknown }).name;
  // AbortSignal.timeout() on a request, or the Watch's connect timer.
  if (name === 'TimeoutError') return true;
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  // undici reports every transport failure as TypeError('fetch failed').
  return err instanceof TypeError && err.message === 'fetch failed';
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const causeText = cause instanceof Error ? `: ${cause.message}` : '';
    return `${err.message}${causeText}`;
  }
  return String(err);
}

function classify(err: unknown): unknown {
  if (err instanceof ApiError || err instanceof TerminalError) return err;
  if (httpStatusOf(err) !== undefined) return toApiError(err);
  return err;
}

export function isNotFound(err: unknown): boolean {
  return classify(err) instanceof NotFoundError;
}

/** True for optimistic-concurrency conflicts, including AlreadyExists. */
export function isConflict(err: unknown): boolean {
  return classify(err) instanceof ConflictError;
}

export function isAlreadyExists(err: unknown): boolean {
  return classify(err) instanceof AlreadyExistsError;
}

export function isGone(err: unknown): boolean {
  return classify(err) instanceof GoneError;
}

export function isForbidden(err: unknown): boolean {
  return classify(err) instanceof ForbiddenError;
}

/** True for errors that retrying cannot fix: a bad spec or an invalid object. */
export function isTerminal(err: unknown): boolean {
  const e = classify(err);
  return e instanceof TerminalError || e instanceof InvalidError;
}

export function isTransient(err: unknown): boolean {
  return classify(err) instanceof TransientApiError || isNetworkError(err);
}
