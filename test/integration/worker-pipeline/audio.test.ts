// Fetching and probing audio: a real HTTP server on 127.0.0.1, real files,
// real ffprobe/ffmpeg.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fetchAudio, redactUri } from '../../../src/worker/pipeline/audio.ts';
import type { FetchAudioOptions } from '../../../src/worker/pipeline/audio.ts';
import { extractSegment, probeAudio } from '../../../src/worker/pipeline/media.ts';
import { RetryableTaskError, TaskCancelledError, UnrecoverableTaskError } from '../../../src/worker/errors.ts';
import { makeCorrupt, makeSpeech, makeTone, tempDir, transcode } from '../../fixtures/audio.ts';
import type { TempDir } from '../../fixtures/audio.ts';
import { startAudioServer } from '../../fixtures/audio-server.ts';
import type { AudioServer } from '../../fixtures/audio-server.ts';
import { audioDuration } from '../../fixtures/audio-duration.ts';
import { freePort } from '../../harness/index.ts';

function isFailure(type: typeof RetryableTaskError | typeof UnrecoverableTaskError, reason: string, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof type, `expected ${type.name} ${reason}, got ${String(err)}`);
    assert.equal(err.reason, reason);
    if (message) assert.match(err.message, message);
    return true;
  };
}

describe('fetchAudio', () => {
  let dir: TempDir;
  let server: AudioServer;
  let tone: Buffer;
  let options: FetchAudioOptions;
  let work: string;
  let roots: string;

  before(async () => {
    dir = await tempDir();
    server = await startAudioServer();
    tone = await readFile(await makeTone(join(dir.path, 'tone.wav'), 1));
    work = join(dir.path, 'work');
    roots = join(dir.path, 'volume');
    await mkdir(work);
    await mkdir(roots);
    const secrets = join(dir.path, 'secrets');
    await mkdir(join(secrets, 'audio-token'), { recursive: true });
    await writeFile(join(secrets, 'audio-token', 'bearerToken'), 's3cret\n');
    options = {
      workDir: work,
      maxBytes: 10 * 1024 * 1024,
      fileRoots: [roots],
      secretsDir: secrets,
      idleTimeoutMs: 30_000,
      signal: new AbortController().signal,
    };
  });
  after(async () => {
    await server.close();
    await dir.remove();
  });

  it('downloads over http to the work directory, reporting progress', async () => {
    const uri = server.addFile('a.wav', tone);
    const progress: number[] = [];
    const local = await fetchAudio({ uri }, { ...options, onProgress: (f) => progress.push(f) });
    assert.equal(local.downloaded, true);
    assert.equal(local.bytes, tone.length);
    assert.equal(local.path, join(work, 'source'));
    assert.deepEqual(await readFile(local.path), tone);
    assert.equal(progress.at(-1), 1);
  });

  it('sends the Secret\'s token and follows a same-origin redirect with it', async () => {
    server.addFile('private.wav', tone, { authorization: 'Bearer s3cret' });
    const local = await fetchAudio({ uri: `${server.url}/redirect/private.wav`, secretRef: { name: 'audio-token' } }, options);
    assert.equal(local.bytes, tone.length);
    assert.equal(server.requests.at(-1)?.authorization, 'Bearer s3cret');
  });

  it('maps 404 to AudioNotFound and 401/403 to AudioForbidden, for good', async () => {
    server.addFile('locked.wav', tone, { authorization: 'Bearer other' });
    await assert.rejects(fetchAudio({ uri: `${server.url}/files/missing.wav` }, options), isFailure(UnrecoverableTaskError, 'AudioNotFound', /404/));
    await assert.rejects(fetchAudio({ uri: `${server.url}/files/locked.wav` }, options), isFailure(UnrecoverableTaskError, 'AudioForbidden', /401/));
    await assert.rejects(
      fetchAudio({ uri: `${server.url}/files/locked.wav`, secretRef: { name: 'audio-token' } }, options),
      isFailure(UnrecoverableTaskError, 'AudioForbidden', /403/),
    );
  });

  it('fails other 4xx for good, and retries 5xx, 408 and 429', async () => {
    await assert.rejects(fetchAudio({ uri: `${server.url}/status/400` }, options), isFailure(UnrecoverableTaskError, 'AudioRejected'));
    await assert.rejects(fetchAudio({ uri: `${server.url}/status/451` }, options), isFailure(UnrecoverableTaskError, 'AudioRejected'));
    for (const status of [500, 502, 503, 408, 429]) {
      await assert.rejects(fetchAudio({ uri: `${server.url}/status/${status}` }, options), isFailure(RetryableTaskError, 'AudioUnavailable', new RegExp(String(status))));
    }
  });

  it('refuses a download whose Content-Length is over the limit before reading it', async () => {
    await assert.rejects(fetchAudio({ uri: `${server.url}/declared-huge` }, options), isFailure(UnrecoverableTaskError, 'AudioTooLarge', /1000000000000 bytes/));
  });

  it('stops a download without Content-Length once it passes the limit, and leaves no file', async () => {
    await assert.rejects(
      fetchAudio({ uri: `${server.url}/undeclared/${3 * 1024 * 1024}` }, { ...options, maxBytes: 1024 * 1024 }),
      isFailure(UnrecoverableTaskError, 'AudioTooLarge'),
    );
    assert.deepEqual(await readdir(work).then((names) => names.filter((n) => n === 'source')), []);
  });

  it('retries a body cut short and a refused connection', async () => {
    await assert.rejects(fetchAudio({ uri: `${server.url}/truncated` }, options), isFailure(RetryableTaskError, 'AudioUnavailable'));
    const port = await freePort();
    await assert.rejects(fetchAudio({ uri: `http://127.0.0.1:${port}/a.wav` }, options), isFailure(RetryableTaskError, 'AudioUnavailable', /ECONNREFUSED/));
  });

  it('abandons a server that sends nothing, retryably', async () => {
    await assert.rejects(
      fetchAudio({ uri: `${server.url}/hang` }, { ...options, idleTimeoutMs: 200 }),
      isFailure(RetryableTaskError, 'AudioUnavailable', /no data for/),
    );
  });

  it('stops at once with the abort reason when the task is aborted', async () => {
    const controller = new AbortController();
    const fetching = fetchAudio({ uri: `${server.url}/hang` }, { ...options, signal: controller.signal });
    controller.abort(new TaskCancelledError('cancel requested'));
    await assert.rejects(fetching, (err: unknown) => err instanceof TaskCancelledError && err.message === 'cancel requested');
  });

  it('uses a file:// path in place when it is inside an allowed root', async () => {
    const path = join(roots, 'in.wav');
    await writeFile(path, tone);
    const local = await fetchAudio({ uri: pathToFileURL(path).href }, options);
    assert.deepEqual(local, { path, bytes: tone.length, downloaded: false });
  });

  it('refuses file:// outside the allowed roots, through symlinks too, and missing files', async () => {
    const outside = join(dir.path, 'tone.wav');
    await assert.rejects(fetchAudio({ uri: pathToFileURL(outside).href }, options), isFailure(UnrecoverableTaskError, 'AudioForbidden', /outside/));
    await assert.rejects(fetchAudio({ uri: `file://${roots}/../tone.wav` }, options), isFailure(UnrecoverableTaskError, 'AudioForbidden', /outside/));
    await symlink(outside, join(roots, 'link.wav'));
    await assert.rejects(fetchAudio({ uri: pathToFileURL(join(roots, 'link.wav')).href }, options), isFailure(UnrecoverableTaskError, 'AudioForbidden', /resolves to/));
    await assert.rejects(fetchAudio({ uri: pathToFileURL(join(roots, 'nope.wav')).href }, options), isFailure(UnrecoverableTaskError, 'AudioNotFound'));
    await assert.rejects(fetchAudio({ uri: pathToFileURL(join(roots, 'in.wav')).href }, { ...options, fileRoots: [] }), isFailure(UnrecoverableTaskError, 'AudioForbidden', /disabled/));
  });

  it('refuses s3:// and unknown schemes as UnsupportedScheme', async () => {
    await assert.rejects(fetchAudio({ uri: 's3://bucket/key.wav' }, options), isFailure(UnrecoverableTaskError, 'UnsupportedScheme', /presigned/));
    await assert.rejects(fetchAudio({ uri: 'ftp://host/a.wav' }, options), isFailure(UnrecoverableTaskError, 'UnsupportedScheme'));
  });

  it('keeps credentials and query strings out of messages', () => {
    assert.equal(redactUri('https://user:pw@host/a.wav?X-Amz-Signature=abc'), 'https://host/a.wav?…');
  });
});

describe('probeAudio and extractSegment', () => {
  let dir: TempDir;
  before(async () => {
    dir = await tempDir();
  });
  after(() => dir.remove());

  it('reads the duration of common formats', async () => {
    const wav = await makeTone(join(dir.path, 'tone.wav'), 3.5);
    const mp3 = await transcode(wav, join(dir.path, 'tone.mp3'));
    const ogg = await transcode(wav, join(dir.path, 'tone.ogg'));
    const speech = await makeSpeech(join(dir.path, 'speech.wav'), 'The worker fetched the audio and cut it into chunks.');
    for (const path of [wav, mp3, ogg]) {
      const info = await probeAudio(path, new AbortController().signal);
      assert.ok(Math.abs(info.durationSeconds - 3.5) < 0.1, `${path}: ${info.durationSeconds}`);
    }
    const spoken = await probeAudio(speech, new AbortController().signal);
    assert.ok(spoken.durationSeconds > 1 && spoken.durationSeconds < 10);
  });

  it('calls a file that is not audio InvalidAudio, for good', async () => {
    const corrupt = await makeCorrupt(join(dir.path, 'corrupt.wav'));
    await assert.rejects(probeAudio(corrupt, new AbortController().signal), isFailure(UnrecoverableTaskError, 'InvalidAudio'));
    const text = join(dir.path, 'notes.txt');
    await writeFile(text, 'hello, this is not audio at all\n');
    await assert.rejects(probeAudio(text, new AbortController().signal), isFailure(UnrecoverableTaskError, 'InvalidAudio'));
  });

  it('cuts a 16 kHz mono piece at the right place', async () => {
    const mp3 = await transcode(await makeTone(join(dir.path, 'long.wav'), 5), join(dir.path, 'long.mp3'));
    for (const format of ['wav', 'flac'] as const) {
      const dest = join(dir.path, `piece.${format}`);
      await extractSegment({ source: mp3, dest, startSeconds: 3, durationSeconds: 2, format, signal: new AbortController().signal });
      const info = await probeAudio(dest, new AbortController().signal);
      assert.equal(info.sampleRate, 16_000);
      assert.equal(info.channels, 1);
      assert.ok(Math.abs(info.durationSeconds - 2) < 0.05, `${format}: ${info.durationSeconds}`);
      assert.ok(Math.abs((audioDuration(await readFile(dest)) ?? 0) - 2) < 0.05);
    }
  });
});
