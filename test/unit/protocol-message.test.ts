import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Kind } from '../../src/api/index.ts';
import {
  ProtocolDecodeError,
  decodeCancelMessage,
  decodeTaskMessage,
  encodeCancelMessage,
  encodeTaskMessage,
  salvageTaskIdentity,
} from '../../src/protocol/index.ts';

const valid = {
  namespace: 'media',
  name: 'interview-42',
  uid: '0b5e7c1a-2f4d-4c61-9a0e-3c2b1d4e5f60',
  kind: Kind.TranscriptionTask,
  attempt: 1,
  spec: { audio: { uri: 's3://bucket/interview.flac' } },
};

function decodeError(body: unknown): ProtocolDecodeError {
  try {
    decodeTaskMessage(typeof body === 'string' ? body : JSON.stringify(body));
  } catch (err) {
    assert.ok(err instanceof ProtocolDecodeError, `expected ProtocolDecodeError, got ${String(err)}`);
    return err;
  }
  assert.fail('decoding should have failed');
}

describe('task message', () => {
  it('round-trips and fills the spec defaults', () => {
    const message = decodeTaskMessage(encodeTaskMessage(valid));
    assert.equal(message.kind, Kind.TranscriptionTask);
    assert.equal(message.uid, valid.uid);
    assert.equal(message.spec.priority, 'Normal');
    assert.equal(message.spec.timeoutSeconds, 3600);
    assert.deepEqual(message.spec.retryPolicy, { maxRetries: 3, backoffSeconds: 30 });
    assert.equal(message.spec.resultTTLSeconds, 604800);
    assert.equal(message.kind === Kind.TranscriptionTask && message.spec.model, 'large-v3');
  });

  it('validates the spec of the kind the message names', () => {
    const message = decodeTaskMessage(
      JSON.stringify({ ...valid, kind: Kind.DiarizationTask, spec: { ...valid.spec, minSpeakers: 2, maxSpeakers: 4 } }),
    );
    assert.equal(message.kind, Kind.DiarizationTask);
    const err = decodeError({ ...valid, kind: Kind.DiarizationTask, spec: { ...valid.spec, minSpeakers: 5, maxSpeakers: 2 } });
    assert.equal(err.field, 'spec.minSpeakers');
  });

  it('names the bad field and keeps the uid for a failed report', () => {
    const err = decodeError({ ...valid, spec: { audio: { uri: 'ftp://nope' } } });
    assert.equal(err.field, 'spec.audio.uri');
    assert.match(err.message, /spec\.audio\.uri/);
    assert.equal(err.uid, valid.uid);

    const attempt = decodeError({ ...valid, attempt: 0 });
    assert.equal(attempt.field, 'attempt');

    const kind = decodeError({ ...valid, kind: 'VideoTask' });
    assert.equal(kind.field, 'kind');
    assert.equal(kind.uid, valid.uid);
  });

  it('reports a missing field by name', () => {
    const { namespace: _omit, ...rest } = valid;
    const err = decodeError(rest);
    assert.equal(err.field, 'namespace');
  });

  it('rejects bodies that are not JSON objects, without a uid', () => {
    assert.match(decodeError('not json').message, /not JSON/);
    assert.equal(decodeError('not json').uid, undefined);
    assert.match(decodeError('[1,2]').message, /not a JSON object/);
  });

  it('refuses a uid that would break the Redis hash tag', () => {
    const err = decodeError({ ...valid, uid: 'a}b' });
    assert.equal(err.field, 'uid');
    assert.equal(err.uid, undefined);
  });

  it('salvages what a broken body still says about its task', () => {
    assert.deepEqual(salvageTaskIdentity(JSON.stringify({ uid: 'u-1', name: 'n', namespace: 'ns', attempt: 2, spec: 7 })), {
      uid: 'u-1',
      name: 'n',
      namespace: 'ns',
      attempt: 2,
    });
    assert.deepEqual(salvageTaskIdentity('{{'), {});
  });

  it('refuses to encode an invalid message', () => {
    assert.throws(() => encodeTaskMessage({ ...valid, attempt: -1 }), ProtocolDecodeError);
  });
});

describe('cancel message', () => {
  it('carries only the uid', () => {
    assert.deepEqual(decodeCancelMessage(encodeCancelMessage('u-9')), { uid: 'u-9' });
    assert.throws(() => decodeCancelMessage('{}'), ProtocolDecodeError);
    assert.throws(() => decodeCancelMessage('nope'), /not JSON/);
  });
});
