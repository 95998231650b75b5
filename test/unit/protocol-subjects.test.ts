import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Kind, Priority } from '../../src/api/index.ts';
import {
  CANCEL_SUBJECT,
  DEFAULT_QUEUE_NAMES,
  STREAM_SUBJECTS,
  consumerBindings,
  consumerName,
  kindSubjectFilter,
  msgId,
  parseTaskSubject,
  queueNames,
  redisKeys,
  reportsStreamKey,
  streamSubjects,
  taskSubject,
} from '../../src/protocol/index.ts';

describe('protocol subjects and names', () => {
  it('builds the subjects DESIGN.md fixes', () => {
    assert.equal(taskSubject(Kind.TranscriptionTask, Priority.High), 'taskqueue.tasks.transcription.high');
    assert.equal(taskSubject(Kind.DiarizationTask, Priority.Low), 'taskqueue.tasks.diarization.low');
    assert.deepEqual(streamSubjects(), ['taskqueue.tasks.>']);
    assert.deepEqual(STREAM_SUBJECTS, ['taskqueue.tasks.>']);
    assert.equal(DEFAULT_QUEUE_NAMES.stream, 'TASKQUEUE');
    assert.equal(DEFAULT_QUEUE_NAMES.cancelSubject, 'taskqueue.control.cancel');
    assert.equal(CANCEL_SUBJECT, DEFAULT_QUEUE_NAMES.cancelSubject);
    assert.equal(kindSubjectFilter(Kind.TranscriptionTask), 'taskqueue.tasks.transcription.*');
  });

  it('moves every subject under another prefix together', () => {
    const names = queueNames({ stream: 'TQ_TEST', subjectPrefix: 'tq_a1' });
    assert.equal(taskSubject(Kind.TranscriptionTask, Priority.Critical, names), 'tq_a1.tasks.transcription.critical');
    assert.deepEqual(streamSubjects(names), ['tq_a1.tasks.>']);
    assert.equal(names.cancelSubject, 'tq_a1.control.cancel');
    assert.throws(() => queueNames({ subjectPrefix: 'bad.*' }), /subject prefix/);
  });

  it('names one durable consumer per kind and priority, with disjoint filters', () => {
    assert.equal(consumerName(Kind.TranscriptionTask, Priority.Normal), 'tq-transcription-normal');
    assert.equal(consumerName(Kind.DiarizationTask, Priority.Critical), 'tq-diarization-critical');
    const bindings = consumerBindings();
    assert.equal(bindings.length, 8);
    assert.equal(new Set(bindings.map((b) => b.name)).size, 8);
    assert.equal(new Set(bindings.map((b) => b.filterSubject)).size, 8);
    for (const b of bindings) assert.equal(b.filterSubject, taskSubject(b.kind, b.priority));
  });

  it('parses its own subjects and nothing else', () => {
    assert.deepEqual(parseTaskSubject('taskqueue.tasks.diarization.normal'), {
      kind: Kind.DiarizationTask,
      priority: Priority.Normal,
    });
    assert.equal(parseTaskSubject('taskqueue.tasks.diarization'), undefined);
    assert.equal(parseTaskSubject('taskqueue.tasks.video.high'), undefined);
    assert.equal(parseTaskSubject('taskqueue.tasks.transcription.urgent'), undefined);
    assert.equal(parseTaskSubject('other.tasks.transcription.high'), undefined);
  });

  it('makes the message id from uid and attempt', () => {
    assert.equal(msgId('6f1c0b9e-1', 3), '6f1c0b9e-1:3');
  });

  it('keeps a task\'s keys in one hash slot', () => {
    const keys = redisKeys('tq:', 'abc-123');
    assert.deepEqual(keys, {
      state: 'tq:{abc-123}:state',
      result: 'tq:{abc-123}:result',
      cancel: 'tq:{abc-123}:cancel',
      checkpoints: 'tq:{abc-123}:checkpoints',
    });
    assert.equal(reportsStreamKey('tq:'), 'tq:{reports}');
    assert.equal(reportsStreamKey(), 'tq:{reports}');
  });
});
