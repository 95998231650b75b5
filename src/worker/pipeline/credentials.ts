// Credentials for fetching audio, from the Secret named by
// spec.audio.secretRef. Workers never talk to the Kubernetes API, so the
// Secret is mounted as a volume at `<secretsDir>/<name>/`, one file per key.
//
// Keys read (the first that is present wins):
//   authorization        the whole Authorization header value, e.g. "Bearer abc"
//   bearerToken          a token, sent as "Authorization: Bearer <token>"
//   username + password  HTTP Basic
// Trailing newlines are dropped (kubectl create secret --from-file keeps them).
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PipelineReason, unrecoverable } from './failures.ts';

// A Secret name is an RFC 1123 subdomain: that rule also keeps it from
// escaping secretsDir ("..", "/").
const SECRET_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export interface AudioCredentials {
  /** Value of the Authorization header. */
  authorization: string;
  /** Which key it came from, for logs (never the value). */
  source: 'authorization' | 'bearerToken' | 'basic';
}

async function readKey(dir: string, key: string): Promise<string | undefined> {
  try {
    const value = await readFile(join(dir, key), 'utf8');
    return value.replace(/[\r\n]+$/, '');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function readAudioCredentials(secretsDir: string, secretName: string): Promise<AudioCredentials> {
  if (!SECRET_NAME.test(secretName) || secretName.length > 253) {
    throw unrecoverable(PipelineReason.SecretNotFound, `audio.secretRef.name "${secretName}" is not a valid Secret name`);
  }
  const dir = join(secretsDir, secretName);
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw unrecoverable(
      PipelineReason.SecretNotFound,
      `Secret "${secretName}" named by audio.secretRef is not mounted on this worker (expected ${dir}/)`,
    );
  }
  const authorization = await readKey(dir, 'authorization');
  if (authorization) return { authorization, source: 'authorization' };
  const token = await readKey(dir, 'bearerToken');
  if (token) return { authorization: `Bearer ${token}`, source: 'bearerToken' };
  const username = await readKey(dir, 'username');
  const password = await readKey(dir, 'password');
  if (username !== undefined && password !== undefined) {
    return { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`, source: 'basic' };
  }
  throw unrecoverable(
    PipelineReason.SecretNotFound,
    `Secret "${secretName}" has none of the keys authorization, bearerToken, or username and password`,
  );
}
