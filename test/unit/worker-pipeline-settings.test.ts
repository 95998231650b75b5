import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PipelineSettingsError, parsePipelineEnv, resolvePipelineSettings } from '../../src/worker/pipeline/settings.ts';
import { readAudioCredentials } from '../../src/worker/pipeline/credentials.ts';
import { UnrecoverableTaskError } from '../../src/worker/errors.ts';
import { normalizeLanguage } from '../../src/worker/engines/languages.ts';
import { tempDir } from '../fixtures/audio.ts';

describe('pipeline settings', () => {
  it('takes the worker config first, then the environment, then defaults', () => {
    const settings = resolvePipelineSettings(
      { engine: 'exec', engineExecCommand: ['python3', 'e.py'], chunkSeconds: 60 },
      { TQ_ENGINE: 'openai', TQ_CHUNK_SECONDS: '120', TQ_FAKE_CHUNK_MS: '5', TQ_AUDIO_FILE_ROOTS: '/data, /mnt/audio' },
    );
    assert.equal(settings.engine, 'exec');
    assert.deepEqual(settings.engineExecCommand, ['python3', 'e.py']);
    assert.equal(settings.chunkSeconds, 60);
    assert.equal(settings.fakeChunkMs, 5);
    assert.deepEqual(settings.audioFileRoots, ['/data', '/mnt/audio']);
    assert.equal(settings.chunkFormat, 'wav');
    assert.equal(settings.audioFetchIdleTimeoutSeconds, 60);
  });

  it('refuses file:// unless roots are configured', () => {
    assert.deepEqual(resolvePipelineSettings({}, {}).audioFileRoots, []);
  });

  it('names every bad variable at once', () => {
    assert.throws(
      () => parsePipelineEnv({ TQ_ENGINE: 'gpu', TQ_CHUNK_SECONDS: '-3', TQ_ENGINE_EXEC_COMMAND: 'python3 engine.py' }),
      (err: unknown) => {
        assert.ok(err instanceof PipelineSettingsError);
        assert.match(err.message, /TQ_ENGINE:/);
        assert.match(err.message, /TQ_CHUNK_SECONDS:/);
        assert.match(err.message, /TQ_ENGINE_EXEC_COMMAND: must be a JSON array/);
        return true;
      },
    );
  });

  it('reads the exec command as a JSON argv', () => {
    assert.deepEqual(parsePipelineEnv({ TQ_ENGINE_EXEC_COMMAND: '["python3","/app/e.py","--x"]' }).TQ_ENGINE_EXEC_COMMAND, ['python3', '/app/e.py', '--x']);
  });
});

describe('audio credentials from a mounted Secret', () => {
  it('reads authorization, bearerToken or username/password, in that order', async () => {
    const dir = await tempDir();
    try {
      await mkdir(join(dir.path, 'full'));
      await writeFile(join(dir.path, 'full', 'authorization'), 'Token abc\n');
      await writeFile(join(dir.path, 'full', 'bearerToken'), 'ignored');
      await mkdir(join(dir.path, 'token'));
      await writeFile(join(dir.path, 'token', 'bearerToken'), 'xyz\n');
      await mkdir(join(dir.path, 'basic'));
      await writeFile(join(dir.path, 'basic', 'username'), 'ann');
      await writeFile(join(dir.path, 'basic', 'password'), 'p:w');
      await mkdir(join(dir.path, 'empty'));
      assert.deepEqual(await readAudioCredentials(dir.path, 'full'), { authorization: 'Token abc', source: 'authorization' });
      assert.deepEqual(await readAudioCredentials(dir.path, 'token'), { authorization: 'Bearer xyz', source: 'bearerToken' });
      assert.deepEqual(await readAudioCredentials(dir.path, 'basic'), {
        authorization: `Basic ${Buffer.from('ann:p:w').toString('base64')}`,
        source: 'basic',
      });
      await assert.rejects(readAudioCredentials(dir.path, 'empty'), (err: unknown) =>
        err instanceof UnrecoverableTaskError && err.reason === 'SecretNotFound' && /none of the keys/.test(err.message));
      await assert.rejects(readAudioCredentials(dir.path, 'absent'), (err: unknown) =>
        err instanceof UnrecoverableTaskError && err.reason === 'SecretNotFound' && /not mounted/.test(err.message));
      await assert.rejects(readAudioCredentials(dir.path, '../etc'), (err: unknown) =>
        err instanceof UnrecoverableTaskError && /not a valid Secret name/.test(err.message));
    } finally {
      await dir.remove();
    }
  });
});

describe('normalizeLanguage', () => {
  it('maps Whisper language names and tags to ISO 639-1', () => {
    assert.equal(normalizeLanguage('english'), 'en');
    assert.equal(normalizeLanguage('German'), 'de');
    assert.equal(normalizeLanguage('en-US'), 'en');
    assert.equal(normalizeLanguage('haitian creole'), 'ht');
    assert.equal(normalizeLanguage(''), undefined);
  });
});
