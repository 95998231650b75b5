// Getting a task's audio onto local disk: http(s) downloads streamed to a
// file under the task's work directory, file:// paths checked and used in
// place. Every failure says whether a retry can help (docs/results.md).
import { createWriteStream } from 'node:fs';
import { realpath, rm, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import { readAudioCredentials } from './credentials.ts';
import { PipelineReason, abortError, retryable, throwIfAborted, unrecoverable } from './failures.ts';

export interface AudioSourceSpec {
  uri: string;
  secretRef?: { name: string } | undefined;
}

export interface FetchAudioOptions {
  /** Downloads are written here; the caller owns and removes the directory. */
  workDir: string;
  maxBytes: number;
  fileRoots: readonly string[];
  secretsDir: string;
  idleTimeoutMs: number;
  signal: AbortSignal;
  /** Fraction 0..1 of the download done, when the size is known. */
  onProgress?: (fraction: number) => void;
}

export interface LocalAudio {
  path: string;
  bytes: number;
  /** True when the file is a download the pipeline may delete. */
  downloaded: boolean;
}

export async function fetchAudio(source: AudioSourceSpec, options: FetchAudioOptions): Promise<LocalAudio> {
  throwIfAborted(options.signal);
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(source.uri)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'http':
    case 'https':
      return downloadHttp(source, options);
    case 'file':
      return openLocalFile(source.uri, options);
    case 's3':
      throw unrecoverable(
        PipelineReason.UnsupportedScheme,
        's3:// audio is not supported by this worker yet; serve the object over https:// (e.g. a presigned URL) instead',
      );
    default:
      throw unrecoverable(
        PipelineReason.UnsupportedScheme,
        `audio.uri scheme "${scheme ?? source.uri}" is not supported; use https://, http:// or file://`,
      );
  }
}

// --- file:// ---------------------------------------------------------------

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel) && rel.split(sep)[0] !== '..');
}

async function openLocalFile(uri: string, options: FetchAudioOptions): Promise<LocalAudio> {
  let path: string;
  try {
    path = fileURLToPath(uri);
  } catch (err) {
    throw unrecoverable(PipelineReason.UnsupportedScheme, `audio.uri ${uri} is not a local file URI: ${(err as Error).message}`, err);
  }
  if (options.fileRoots.length === 0) {
    throw unrecoverable(PipelineReason.AudioForbidden, `file:// audio is disabled on this worker (no allowed directories are configured)`);
  }
  const roots = options.fileRoots.map((root) => resolve(root));
  const lexical = resolve(path);
  const allowedList = roots.join(', ');
  if (!roots.some((root) => isInside(root, lexical))) {
    throw unrecoverable(PipelineReason.AudioForbidden, `${lexical} is outside the directories this worker may read (${allowedList})`);
  }
  let real: string;
  try {
    real = await realpath(lexical);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw unrecoverable(PipelineReason.AudioNotFound, `audio file ${lexical} does not exist`, err);
    }
    throw unrecoverable(PipelineReason.AudioForbidden, `cannot read audio file ${lexical}: ${(err as Error).message}`, err);
  }
  // A symlink inside a root may point anywhere; judge where it lands.
  const realRoots = await Promise.all(roots.map((root) => realpath(root).catch(() => root)));
  if (!realRoots.some((root) => isInside(root, real))) {
    throw unrecoverable(PipelineReason.AudioForbidden, `${lexical} resolves to ${real}, outside the directories this worker may read (${allowedList})`);
  }
  const info = await stat(real);
  if (!info.isFile()) throw unrecoverable(PipelineReason.AudioNotFound, `${lexical} is not a regular file`);
  if (info.size > options.maxBytes) {
    throw unrecoverable(PipelineReason.AudioTooLarge, `audio file is ${info.size} bytes, more than the limit of ${options.maxBytes}`);
  }
  options.onProgress?.(1);
  return { path: real, bytes: info.size, downloaded: false };
}

// --- http(s):// ------------------------------------------------------------

class TooLargeError extends Error {
  override name = 'TooLargeError';
}

function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  const code = (cause as { code?: unknown } | undefined)?.code;
  const message = cause instanceof Error ? cause.message : err instanceof Error ? err.message : String(err);
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}

/** The URI without user info or query string, for messages that end up in the task status. */
export function redactUri(uri: string): string {
  try {
    const url = new URL(uri);
    return `${url.protocol}//${url.host}${url.pathname}${url.search ? '?…' : ''}`;
  } catch {
    return '(unparseable URI)';
  }
}

function statusFailure(status: number, statusText: string, where: string): Error {
  const what = `GET ${where} answered ${status}${statusText ? ` ${statusText}` : ''}`;
  if (status === 404 || status === 410) return unrecoverable(PipelineReason.AudioNotFound, what);
  if (status === 401 || status === 403) return unrecoverable(PipelineReason.AudioForbidden, `${what}: check audio.secretRef`);
  // Timeouts and rate limits are the server's state, not the request's fault.
  if (status === 408 || status === 429) return retryable(PipelineReason.AudioUnavailable, what);
  if (status >= 400 && status < 500) return unrecoverable(PipelineReason.AudioRejected, what);
  return retryable(PipelineReason.AudioUnavailable, what);
}

async function downloadHttp(source: AudioSourceSpec, options: FetchAudioOptions): Promise<LocalAudio> {
  const where = redactUri(source.uri);
  const headers: Record<string, string> = { accept: '*/*' };
  if (source.secretRef?.name) {
    const credentials = await readAudioCredentials(options.secretsDir, source.secretRef.name);
    headers.authorization = credentials.authorization;
  }

  // One timer covers the wait for headers and every gap between body chunks:
  // a slow but moving download of a long recording must not be cut off.
  const idle = new AbortController();
  let idleTimer: NodeJS.Timeout | undefined;
  const touch = () => {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = setTimeout(() => idle.abort(new Error('idle timeout')), options.idleTimeoutMs);
  };
  const signal = AbortSignal.any([options.signal, idle.signal]);
  const failed = (err: unknown): Error => {
    if (options.signal.aborted) return abortError(options.signal);
    if (idle.signal.aborted) {
      return retryable(PipelineReason.AudioUnavailable, `GET ${where}: no data for ${Math.round(options.idleTimeoutMs / 1000)} s`, err);
    }
    return retryable(PipelineReason.AudioUnavailable, `GET ${where} failed: ${describeNetworkError(err)}`, err);
  };

  const path = join(options.workDir, 'source');
  touch();
  try {
    let response: Response;
    try {
      response = await fetch(source.uri, { headers, signal, redirect: 'follow' });
    } catch (err) {
      throw failed(err);
    }
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined);
      throw statusFailure(response.status, response.statusText, where);
    }
    const declared = Number(response.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > options.maxBytes) {
      await response.body?.cancel().catch(() => undefined);
      throw unrecoverable(PipelineReason.AudioTooLarge, `audio at ${where} is ${declared} bytes, more than the limit of ${options.maxBytes}`);
    }
    if (!response.body) throw unrecoverable(PipelineReason.InvalidAudio, `GET ${where} returned no body`);

    let received = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        touch();
        received += chunk.length;
        if (received > options.maxBytes) {
          callback(new TooLargeError());
          return;
        }
        if (Number.isFinite(declared) && declared > 0) options.onProgress?.(Math.min(1, received / declared));
        callback(null, chunk);
      },
    });
    try {
      await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), counter, createWriteStream(path), { signal });
    } catch (err) {
      await rm(path, { force: true });
      if (err instanceof TooLargeError) {
        throw unrecoverable(PipelineReason.AudioTooLarge, `audio at ${where} is more than the limit of ${options.maxBytes} bytes`);
      }
      throw failed(err);
    }
    // A body cut short by the server is a transient fault, not bad audio.
    if (Number.isFinite(declared) && received < declared) {
      await rm(path, { force: true });
      throw retryable(PipelineReason.AudioUnavailable, `GET ${where} ended after ${received} of ${declared} bytes`);
    }
    options.onProgress?.(1);
    return { path, bytes: received, downloaded: true };
  } finally {
    if (idleTimer) clearTimeout(idleTimer);
  }
}
