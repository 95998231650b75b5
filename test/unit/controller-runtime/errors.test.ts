import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import {
  AlreadyExistsError,
  ApiError,
  ConflictError,
  ForbiddenError,
  GoneError,
  InvalidError,
  isAlreadyExists,
  isConflict,
  isForbidden,
  isGone,
  isNotFound,
  isTerminal,
  isTransient,
  NotFoundError,
  TerminalError,
  toApiError,
  TransientApiError,
  UnauthorizedError,
} from '../../../src/controller/runtime/errors.ts';

/** The body the generated client puts in ApiException: the raw response text. */
function statusBody(code: number, reason: string, message: string, details: object = {}): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message, details });
}

function apiException(code: number, body: unknown, headers: Record<string, string> = {}): ApiException<unknown> {
  return new ApiException(code, 'Unknown API Status Code!', body, headers);
}

describe('toApiError', () => {
  const cases: [number, string, new (...args: never[]) => ApiError][] = [
    [401, 'Unauthorized', UnauthorizedError],
    [403, 'Forbidden', ForbiddenError],
    [404, 'NotFound', NotFoundError],
    [409, 'Conflict', ConflictError],
    [410, 'Expired', GoneError],
    [422, 'Invalid', InvalidError],
    [429, 'TooManyRequests', TransientApiError],
    [500, 'InternalError', TransientApiError],
    [503, 'ServiceUnavailable', TransientApiError],
    [504, 'Timeout', TransientApiError],
  ];
  for (const [code, reason, cls] of cases) {
    it(`maps HTTP ${code} to ${cls.name}`, () => {
      const raw = apiException(code, statusBody(code, reason, `${reason} happened`));
      const err = toApiError(raw);
      assert.ok(err instanceof cls, `${err.name} is not ${cls.name}`);
      assert.equal(err.code, code);
      assert.equal(err.reason, reason);
      assert.equal(err.message, `${reason} happened`);
      assert.equal(err.cause, raw);
      assert.equal(err.name, cls.name);
    });
  }

  it('tells AlreadyExists apart from a write conflict, both being conflicts', () => {
    const exists = toApiError(apiException(409, statusBody(409, 'AlreadyExists', 'tt "a" already exists')));
    const conflict = toApiError(apiException(409, statusBody(409, 'Conflict', 'the object has been modified')));
    assert.ok(exists instanceof AlreadyExistsError);
    assert.ok(!(conflict instanceof AlreadyExistsError));
    assert.equal(isConflict(exists), true);
    assert.equal(isAlreadyExists(exists), true);
    assert.equal(isAlreadyExists(conflict), false);
  });

  it('keeps the field causes of a 422', () => {
    const err = toApiError(
      apiException(
        422,
        statusBody(422, 'Invalid', 'TranscriptionTask "a" is invalid', {
          causes: [{ reason: 'FieldValueInvalid', field: 'spec.timeoutSeconds', message: 'must be <= 86400' }],
        }),
      ),
    );
    assert.ok(err instanceof InvalidError);
    assert.deepEqual(err.causes, [{ reason: 'FieldValueInvalid', field: 'spec.timeoutSeconds', message: 'must be <= 86400' }]);
  });

  it('reads Retry-After from the body details or the header', () => {
    const fromBody = toApiError(apiException(429, statusBody(429, 'TooManyRequests', 'slow down', { retryAfterSeconds: 3 })));
    const fromHeader = toApiError(apiException(503, '', { 'retry-after': '7' }));
    assert.ok(fromBody instanceof TransientApiError && fromHeader instanceof TransientApiError);
    assert.equal(fromBody.retryAfterSeconds, 3);
    assert.equal(fromHeader.retryAfterSeconds, 7);
  });

  it('copes with bodies that are objects, plain text or missing', () => {
    const asObject = toApiError(apiException(404, { kind: 'Status', reason: 'NotFound', message: 'nope' }));
    assert.ok(asObject instanceof NotFoundError);
    assert.equal(asObject.message, 'nope');
    const asText = toApiError(apiException(502, 'Bad Gateway from proxy'));
    assert.ok(asText instanceof TransientApiError);
    assert.equal(asText.message, 'Bad Gateway from proxy');
    const missing = toApiError(apiException(401, undefined));
    assert.ok(missing instanceof UnauthorizedError);
    assert.match(missing.message, /401/);
  });

  it('maps other 4xx codes to a plain ApiError', () => {
    const err = toApiError(apiException(415, statusBody(415, 'UnsupportedMediaType', 'strategic merge patch is not supported')));
    assert.equal(err.constructor, ApiError);
    assert.equal(err.code, 415);
  });

  it("maps the Watch class's statusCode errors", () => {
    const err = toApiError(Object.assign(new Error('Gone'), { statusCode: 410 }));
    assert.ok(err instanceof GoneError);
  });

  it('maps network failures and timeouts to TransientApiError without a code', () => {
    const refused = Object.assign(new TypeError('fetch failed'), {
      cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' }),
    });
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    for (const raw of [refused, reset, timeout]) {
      const err = toApiError(raw);
      assert.ok(err instanceof TransientApiError, `${String(raw)} -> ${err.name}`);
      assert.equal(err.code, undefined);
      assert.equal(err.cause, raw);
    }
    assert.match(toApiError(refused).message, /ECONNREFUSED/);
  });

  it('wraps anything else in a plain ApiError and passes ApiErrors through', () => {
    const weird = toApiError('a string');
    assert.equal(weird.constructor, ApiError);
    const already = new NotFoundError('x', { code: 404 });
    assert.equal(toApiError(already), already);
  });
});

describe('error predicates', () => {
  it('work on typed errors and on raw ApiExceptions alike', () => {
    assert.equal(isNotFound(new NotFoundError('x')), true);
    assert.equal(isNotFound(apiException(404, '')), true);
    assert.equal(isNotFound(apiException(409, '')), false);
    assert.equal(isConflict(apiException(409, statusBody(409, 'Conflict', 'modified'))), true);
    assert.equal(isGone(apiException(410, '')), true);
    assert.equal(isForbidden(apiException(403, '')), true);
    assert.equal(isNotFound(new Error('404')), false);
    assert.equal(isNotFound(undefined), false);
  });

  it('treat bad specs and invalid objects as terminal, nothing else', () => {
    assert.equal(isTerminal(new TerminalError('bad audio.uri')), true);
    assert.equal(isTerminal(apiException(422, statusBody(422, 'Invalid', 'invalid'))), true);
    assert.equal(isTerminal(apiException(500, '')), false);
    assert.equal(isTerminal(new ConflictError('x')), false);
    assert.equal(isTerminal(new Error('x')), false);
  });

  it('recognise transient failures', () => {
    assert.equal(isTransient(apiException(503, '')), true);
    assert.equal(isTransient(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), true);
    assert.equal(isTransient(apiException(404, '')), false);
  });

  it('TerminalError carries a reason and a cause', () => {
    const cause = new Error('parse');
    const err = new TerminalError('audio.uri is not a URI', { reason: 'InvalidInput', cause });
    assert.equal(err.reason, 'InvalidInput');
    assert.equal(err.cause, cause);
    assert.equal(new TerminalError('x').reason, 'InvalidSpec');
  });
});
