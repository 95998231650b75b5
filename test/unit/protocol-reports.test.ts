import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolDecodeError, ReportType, fieldsToRecord, parseReportEntry, parseTaskState } from '../../src/protocol/index.ts';

const common = {
  uid: 'u-1',
  namespace: 'media',
  name: 'interview',
  kind: 'TranscriptionTask',
  attempt: '2',
  worker: 'gpu-0',
  at: '2026-01-02T03:04:05.678Z',
};

function flat(record: Record<string, string>): string[] {
  return Object.entries(record).flat();
}

describe('report entries', () => {
  it('parses every report type from XREAD field lists', () => {
    const started = parseReportEntry(flat({ ...common, type: 'started' }));
    assert.equal(started.type, ReportType.Started);
    assert.equal(started.attempt, 2);

    const progress = parseReportEntry(flat({ ...common, type: 'progress', progress: '42' }));
    assert.equal(progress.type === 'progress' && progress.progress, 42);

    const retrying = parseReportEntry({
      ...common,
      type: 'retrying',
      reason: 'AudioUnavailable',
      message: 'HTTP 503',
      nextAttemptAt: '2026-01-02T03:05:05.000Z',
    });
    assert.equal(retrying.type === 'retrying' && retrying.reason, 'AudioUnavailable');

    const succeeded = parseReportEntry({
      ...common,
      type: 'succeeded',
      resultRef: 'tq:{u-1}:result',
      summary: JSON.stringify({ language: 'en', durationSeconds: 12.5, segments: 3 }),
    });
    assert.deepEqual(succeeded.type === 'succeeded' && succeeded.summary, { language: 'en', durationSeconds: 12.5, segments: 3 });

    for (const type of ['heartbeat', 'released', 'failed', 'cancelled'] as const) {
      const extra: Record<string, string> =
        type === 'failed' ? { reason: 'InvalidInput', message: 'x' } : type === 'heartbeat' ? {} : { message: 'x' };
      assert.equal(parseReportEntry({ ...common, type, ...extra }).type, type);
    }
  });

  it('names the field that is wrong', () => {
    const cases: [Record<string, string>, string][] = [
      [{ ...common, type: 'progress', progress: '101' }, 'progress'],
      [{ ...common, type: 'progress', progress: 'half' }, 'progress'],
      [{ ...common, type: 'started', attempt: 'x' }, 'attempt'],
      [{ ...common, type: 'started', at: 'yesterday' }, 'at'],
      [{ ...common, type: 'succeeded', resultRef: 'r', summary: '{' }, 'summary'],
      [{ ...common, type: 'failed', message: 'm' }, 'reason'],
      [{ ...common, type: 'exploded' }, 'type'],
    ];
    for (const [fields, field] of cases) {
      assert.throws(
        () => parseReportEntry(fields),
        (err: unknown) => err instanceof ProtocolDecodeError && err.field === field && err.uid === 'u-1',
        `expected an error on ${field}`,
      );
    }
  });

  it('turns a flat list into a record, ignoring a dangling field', () => {
    assert.deepEqual(fieldsToRecord(['a', '1', 'b', '2', 'c']), { a: '1', b: '2' });
  });
});

describe('task state hash', () => {
  it('is undefined for a task nobody reported on', () => {
    assert.equal(parseTaskState({}), undefined);
    assert.equal(parseTaskState(null), undefined);
  });

  it('types the fields it can read and drops the ones it cannot', () => {
    const state = parseTaskState({
      uid: 'u-1',
      phase: 'Running',
      attempt: '3',
      progress: '57',
      seq: '1234',
      heartbeatAt: '2026-01-02T03:04:05.678Z',
      startedAt: 'not a time',
      reason: '',
      unknown: 'ignored',
    });
    assert.deepEqual(state, {
      uid: 'u-1',
      phase: 'Running',
      attempt: 3,
      progress: 57,
      seq: 1234,
      heartbeatAt: '2026-01-02T03:04:05.678Z',
    });
    assert.equal(parseTaskState({ phase: 'Exploded', seq: '7' })?.phase, undefined);
  });
});
