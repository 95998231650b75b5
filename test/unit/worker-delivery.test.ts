import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseAckSubject, serverTakesTermReason } from '../../src/worker/delivery.ts';

describe('delivery info', () => {
  it('reads the short ack subject', () => {
    assert.deepEqual(parseAckSubject('$JS.ACK.TASKQUEUE.tq-transcription-high.3.17.42.1795418593351773643.5'), {
      stream: 'TASKQUEUE',
      consumer: 'tq-transcription-high',
      deliveryCount: 3,
      streamSequence: 17,
      deliverySequence: 42,
      pending: 5,
    });
  });

  it('reads the long ack subject with domain and account hash', () => {
    assert.deepEqual(
      parseAckSubject('$JS.ACK.hub.ACCHASH.TASKQUEUE.tq-diarization-low.1.2.3.1795418593351773643.0.token'),
      {
        stream: 'TASKQUEUE',
        consumer: 'tq-diarization-low',
        deliveryCount: 1,
        streamSequence: 2,
        deliverySequence: 3,
        pending: 0,
      },
    );
  });

  it('rejects anything else', () => {
    assert.equal(parseAckSubject('_INBOX.abc'), undefined);
    assert.equal(parseAckSubject('$JS.ACK.S.C.x.1.1.1.0'), undefined);
    assert.equal(parseAckSubject('$JS.ACK.S.C.1.1'), undefined);
  });

  it('sends a term reason only to servers that understand it', () => {
    assert.equal(serverTakesTermReason('2.9.10'), false);
    assert.equal(serverTakesTermReason('2.10.22'), false);
    assert.equal(serverTakesTermReason('2.11.0'), true);
    assert.equal(serverTakesTermReason('v2.12.1'), true);
    assert.equal(serverTakesTermReason('3.0.0'), true);
    assert.equal(serverTakesTermReason(undefined), false);
  });
});
