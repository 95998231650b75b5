import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { planChunks } from '../../src/worker/pipeline/chunks.ts';
import { SpeakerLinker, mergeDiarizations, mergeTranscripts } from '../../src/worker/pipeline/merge.ts';

describe('planChunks', () => {
  it('cuts a recording into back-to-back chunks that cover it exactly', () => {
    const plan = planChunks(7, 2);
    assert.deepEqual(
      plan.chunks.map((c) => [c.startSeconds, c.endSeconds]),
      [[0, 2], [2, 4], [4, 6], [6, 7]],
    );
  });

  it('folds a sliver at the end into the last chunk', () => {
    const plan = planChunks(603, 300);
    assert.deepEqual(plan.chunks.map((c) => [c.startSeconds, c.endSeconds]), [[0, 300], [300, 603]]);
  });

  it('keeps a short recording in one chunk', () => {
    assert.deepEqual(planChunks(0.4, 300).chunks, [{ index: 0, startSeconds: 0, endSeconds: 0.4 }]);
  });

  it('gives the same plan for the same duration (resumable across workers)', () => {
    assert.deepEqual(planChunks(3601.2345, 300), planChunks(3601.2345, 300));
  });

  it('rejects nonsense', () => {
    assert.throws(() => planChunks(0, 300), RangeError);
    assert.throws(() => planChunks(10, 0), RangeError);
  });
});

describe('mergeTranscripts', () => {
  const plan = planChunks(6, 2);

  it('shifts chunk times onto the recording and numbers segments in order', () => {
    const result = mergeTranscripts(plan, [
      { language: 'en', segments: [{ start: 0, end: 1, text: 'one' }, { start: 1, end: 2, text: 'two' }] },
      { language: 'en', segments: [{ start: 0.5, end: 1.5, text: 'three' }] },
      { language: 'en', segments: [{ start: 0, end: 2, text: ' four ' }] },
    ]);
    assert.deepEqual(result.segments, [
      { id: 0, start: 0, end: 1, text: 'one' },
      { id: 1, start: 1, end: 2, text: 'two' },
      { id: 2, start: 2.5, end: 3.5, text: 'three' },
      { id: 3, start: 4, end: 6, text: 'four' },
    ]);
    assert.equal(result.text, 'one two three four');
    assert.equal(result.durationSeconds, 6);
    assert.equal(result.language, 'en');
  });

  it('clamps an overshoot to its chunk and never lets segments overlap', () => {
    const result = mergeTranscripts(plan, [
      { segments: [{ start: 0, end: 2.7, text: 'runs past the cut' }] },
      { segments: [{ start: 0, end: 1, text: 'next' }, { start: 0.8, end: 1.2, text: 'overlapping' }] },
      { segments: [] },
    ]);
    assert.deepEqual(
      result.segments.map((s) => [s.start, s.end]),
      [[0, 2], [2, 3], [3, 3.2]],
    );
    for (let i = 1; i < result.segments.length; i++) {
      assert.ok(result.segments[i]!.start >= result.segments[i - 1]!.end);
    }
  });

  it('drops empty text and takes the language spoken longest, unless one was requested', () => {
    const outputs = [
      { language: 'de', segments: [{ start: 0, end: 1, text: '  ' }] },
      { language: 'en', segments: [] },
      { language: 'en', segments: [] },
    ];
    const detected = mergeTranscripts(plan, outputs);
    assert.equal(detected.segments.length, 0);
    assert.equal(detected.language, 'en');
    assert.equal(mergeTranscripts(plan, outputs, 'fr').language, 'fr');
  });
});

describe('SpeakerLinker', () => {
  it('links voices across chunks by embedding, whatever the local labels', () => {
    const linker = new SpeakerLinker({ honourKnownLabels: false });
    const first = linker.assign({
      segments: [{ start: 0, end: 1, speaker: 'a' }, { start: 1, end: 2, speaker: 'b' }],
      speakerEmbeddings: { a: [1, 0.1], b: [0.1, 1] },
    });
    const second = linker.assign({
      segments: [{ start: 0, end: 1, speaker: 'x' }, { start: 1, end: 2, speaker: 'y' }],
      speakerEmbeddings: { x: [0.05, 0.9], y: [0.95, 0] },
    });
    assert.deepEqual([...first], [['a', 'SPEAKER_00'], ['b', 'SPEAKER_01']]);
    assert.deepEqual([...second], [['x', 'SPEAKER_01'], ['y', 'SPEAKER_00']]);
  });

  it('makes a new speaker for an unfamiliar voice, and never merges two voices of one chunk', () => {
    const linker = new SpeakerLinker({ honourKnownLabels: false });
    linker.assign({ segments: [{ start: 0, end: 1, speaker: 'a' }], speakerEmbeddings: { a: [1, 0, 0] } });
    const mapping = linker.assign({
      segments: [{ start: 0, end: 1, speaker: 'p' }, { start: 1, end: 2, speaker: 'q' }, { start: 2, end: 3, speaker: 'r' }],
      speakerEmbeddings: { p: [1, 0, 0], q: [0.99, 0.01, 0], r: [0, 0, 1] },
    });
    assert.deepEqual([...mapping], [['p', 'SPEAKER_00'], ['q', 'SPEAKER_01'], ['r', 'SPEAKER_02']]);
  });

  it('joins the nearest speaker instead of passing maxSpeakers', () => {
    const linker = new SpeakerLinker({ honourKnownLabels: false, maxSpeakers: 1 });
    linker.assign({ segments: [{ start: 0, end: 1, speaker: 'a' }], speakerEmbeddings: { a: [1, 0] } });
    const mapping = linker.assign({ segments: [{ start: 0, end: 1, speaker: 'b' }], speakerEmbeddings: { b: [0, 1] } });
    assert.equal(mapping.get('b'), 'SPEAKER_00');
  });

  it('treats labels without embeddings as chunk-local, except known speakers the engine matched', () => {
    const plain = new SpeakerLinker({ honourKnownLabels: false });
    plain.assign({ segments: [{ start: 0, end: 1, speaker: 'A' }] });
    assert.equal(plain.assign({ segments: [{ start: 0, end: 1, speaker: 'A' }] }).get('A'), 'SPEAKER_01');

    const withReferences = new SpeakerLinker({ honourKnownLabels: true });
    withReferences.assign({ segments: [{ start: 0, end: 1, speaker: 'A' }, { start: 1, end: 2, speaker: 'B' }] });
    const mapping = withReferences.assign({
      segments: [{ start: 0, end: 1, speaker: 'A' }, { start: 1, end: 2, speaker: 'SPEAKER_01' }],
    });
    assert.deepEqual([...mapping], [['SPEAKER_01', 'SPEAKER_01'], ['A', 'SPEAKER_02']]);
  });
});

describe('mergeDiarizations', () => {
  it('puts turns on the recording, relabels them, and rejoins a turn cut by a chunk boundary', () => {
    const plan = planChunks(4, 2);
    const result = mergeDiarizations(
      plan,
      [
        { segments: [{ start: 0, end: 1, speaker: 's1' }, { start: 1, end: 2, speaker: 's2' }], speakerEmbeddings: { s1: [1, 0], s2: [0, 1] } },
        { segments: [{ start: 0, end: 0.5, speaker: 'v' }, { start: 0.5, end: 2, speaker: 'w' }], speakerEmbeddings: { v: [0, 1], w: [1, 0] } },
      ],
      { honourKnownLabels: false },
    );
    assert.deepEqual(result.segments, [
      { start: 0, end: 1, speaker: 'SPEAKER_00' },
      { start: 1, end: 2.5, speaker: 'SPEAKER_01' },
      { start: 2.5, end: 4, speaker: 'SPEAKER_00' },
    ]);
    assert.equal(result.speakers, 2);
    assert.equal(result.durationSeconds, 4);
  });

  it('keeps overlapping speech of different speakers', () => {
    const plan = planChunks(3, 3);
    const result = mergeDiarizations(plan, [{ segments: [{ start: 0, end: 2, speaker: 'a' }, { start: 1, end: 3, speaker: 'b' }] }], {
      honourKnownLabels: false,
    });
    assert.deepEqual(result.segments.map((s) => [s.start, s.end, s.speaker]), [[0, 2, 'SPEAKER_00'], [1, 3, 'SPEAKER_01']]);
  });
});
