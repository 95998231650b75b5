// 6. Worker overhead: one task of N chunks through a worker process running
// the real pipeline (download over HTTP, probe, split with ffmpeg, reports,
// checkpoints, merge) with the fake engine, which sleeps TQ_FAKE_CHUNK_MS per
// chunk. The time outside the engine is the run (the worker's `started` to
// its `succeeded` report) minus the engine calls as the worker timed them
// ("Processed chunk"); the share is that over the whole run. Yardsticks: the
// engine time itself, and the bare ffmpeg command the pipeline runs per chunk.
//
// The audio is made on the spot (a sox tone, encoded to MP3 by ffmpeg, as
// users upload it) and served by a plain HTTP server on 127.0.0.1.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import { Kind, Priority, applyTaskSpecDefaults } from '../src/api/index.ts';
import { encodeTaskMessage, ensureConsumers, ensureStream, fieldsToRecord, msgId, parseTaskState, redisKeys, reportsStreamKey, taskSubject } from '../src/protocol/index.ts';
import { WorkerProcess, stopAll } from './lib/processes.ts';
import { benchQueue } from './lib/queue.ts';
import { expectSome, type BenchContext, type BenchResult, type Benchmark } from './lib/report.ts';
import { nowMs } from './lib/kube.ts';
import { fmt, median } from './lib/stats.ts';
import { poll } from './lib/wait.ts';

const execFileAsync = promisify(execFile);

const SIZES = {
  quick: { chunks: 4, chunkSeconds: 10, chunkMs: 200, runs: 1 },
  full: { chunks: 20, chunkSeconds: 30, chunkMs: 500, runs: 3 },
} as const;

interface RunTiming {
  totalMs: number;
  /** N × TQ_FAKE_CHUNK_MS: what the engine was asked to take. */
  engineMs: number;
  /** The engine calls as the worker timed them ("Processed chunk" ms): the same plus timer slack. */
  engineMeasuredMs: number;
  outsideMs: number;
  /** started → "Fetched audio": download and probe. */
  fetchMs: number;
  progressReports: number;
}

async function makeAudio(dir: string, seconds: number): Promise<string> {
  const wav = join(dir, 'tone.wav');
  const mp3 = join(dir, 'tone.mp3');
  await execFileAsync('sox', ['-n', '-r', '16000', '-c', '1', wav, 'synth', String(seconds), 'sine', '300-3300']);
  await execFileAsync('ffmpeg', ['-nostdin', '-v', 'error', '-y', '-i', wav, '-b:a', '64k', mp3]);
  return mp3;
}

async function serve(data: Buffer): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.url !== '/audio.mp3') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'audio/mpeg', 'content-length': data.length });
    res.end(data);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/audio.mp3`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const workerOverhead: Benchmark = {
  name: 'worker',
  title: 'Worker overhead outside the engine',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const { env } = ctx;
    const { chunks, chunkSeconds, chunkMs, runs } = SIZES[ctx.size];
    const audioSeconds = chunks * chunkSeconds;
    const dir = join(ctx.settings.workDir, 'worker-overhead');
    mkdirSync(dir, { recursive: true });
    const queue = await benchQueue(env, 'wko');
    let worker: WorkerProcess | undefined;
    let server: { url: string; close(): Promise<void> } | undefined;
    try {
      const audioPath = await makeAudio(dir, audioSeconds);
      const audio = readFileSync(audioPath);
      server = await serve(audio);
      const jsm = await jetstreamManager(queue.nc);
      await ensureStream(jsm, { names: queue.names });
      await ensureConsumers(jsm, { names: queue.names, ackWaitMs: 60_000 });
      worker = WorkerProcess.start(ctx.settings, {
        ...queue,
        name: 'overhead-worker',
        env: {
          TQ_PIPELINE: 'standard',
          TQ_ENGINE: 'fake',
          TQ_FAKE_CHUNK_MS: String(chunkMs),
          TQ_CHUNK_SECONDS: String(chunkSeconds),
          TQ_AUDIO_DIR: join(dir, 'work'),
        },
      });
      await worker.waitForLog('Worker started');

      const js = jetstream(queue.nc);
      const timings: RunTiming[] = [];
      for (let run = 0; run < runs; run++) {
        const uid = randomUUID();
        const name = `overhead-${run}`;
        const spec = applyTaskSpecDefaults(Kind.TranscriptionTask, { audio: { uri: server.url }, language: 'en' });
        const h = headers();
        h.set('Nats-Msg-Id', msgId(uid, 1));
        await js.publish(taskSubject(Kind.TranscriptionTask, Priority.Normal, queue.names), encodeTaskMessage({ namespace: 'bench', name, uid, kind: Kind.TranscriptionTask, attempt: 1, spec }), { headers: h });
        let phase: string | undefined;
        await poll(`${name} to succeed`, async () => {
          phase = parseTaskState(await queue.redis.hgetall(redisKeys(queue.keyPrefix, uid).state))?.phase;
          if (phase === 'Failed') throw new Error(`${name} failed:\n${worker?.process.logTail()}`);
          return phase === 'Succeeded';
        }, { timeoutMs: 60_000 + chunks * chunkMs * 2, intervalMs: 20, signal: ctx.signal });

        const entries = await queue.redis.xrange(reportsStreamKey(queue.keyPrefix), '-', '+');
        const reports = entries.map(([, fields]) => fieldsToRecord(fields)).filter((r) => r.uid === uid);
        const startedAt = Date.parse(reports.find((r) => r.type === 'started')?.at ?? '');
        const succeededAt = Date.parse(reports.find((r) => r.type === 'succeeded')?.at ?? '');
        const logs = worker.logs().filter((l) => l.uid === uid);
        const fetched = logs.find((l) => l.msg === 'Fetched audio');
        const engineMeasuredMs = logs.filter((l) => l.msg === 'Processed chunk').reduce((sum, l) => sum + Number(l.ms ?? 0), 0);
        const fetchedAt = Date.parse(String(fetched?.time ?? ''));
        const totalMs = succeededAt - startedAt;
        const engineMs = chunks * chunkMs;
        timings.push({
          totalMs,
          engineMs,
          engineMeasuredMs,
          outsideMs: totalMs - engineMeasuredMs,
          fetchMs: fetchedAt - startedAt,
          progressReports: reports.filter((r) => r.type === 'progress').length,
        });
        const t = timings.at(-1) as RunTiming;
        ctx.log(`run ${run + 1}/${runs}: ${fmt(t.totalMs)} ms in all, engine ${t.engineMs} ms, outside ${fmt(t.outsideMs)} ms (download+probe ${fmt(t.fetchMs)} ms), ${t.progressReports} progress reports`);
      }
      expectSome('finished runs', timings.length);

      // Yardstick for the split: the same ffmpeg command the pipeline runs per
      // chunk (src/worker/pipeline/media.ts extractSegment), timed bare.
      const extractMs: number[] = [];
      for (let i = 0; i < chunks; i++) {
        const from = nowMs();
        await execFileAsync('ffmpeg', [
          '-nostdin', '-v', 'error', '-y', '-ss', (i * chunkSeconds).toFixed(3), '-t', chunkSeconds.toFixed(3), '-i', audioPath,
          '-map', '0:a:0', '-vn', '-sn', '-dn', '-ac', '1', '-ar', '16000', '-c:a', 'pcm_s16le', '-f', 'wav', join(dir, 'bare-chunk.wav'),
        ]);
        extractMs.push(nowMs() - from);
      }
      const bareSplitMs = extractMs.reduce((a, b) => a + b, 0);
      expectSome('run time', median(timings.map((t) => t.totalMs)));

      const total = median(timings.map((t) => t.totalMs));
      const outside = median(timings.map((t) => t.outsideMs));
      const fetchMs = median(timings.map((t) => t.fetchMs));
      const engine = chunks * chunkMs;
      const share = outside / total;
      const engineMeasured = median(timings.map((t) => t.engineMeasuredMs));
      const rest = outside - fetchMs - bareSplitMs;
      ctx.log(`outside the engine: download+probe ${fmt(fetchMs)} ms, ffmpeg split (bare) ${fmt(bareSplitMs)} ms, the rest (reports, checkpoints, merge, node) ${fmt(rest)} ms; engine calls took ${fmt(engineMeasured)} ms for ${engine} ms asked`);
      return {
        rows: [
          {
            measurement: `6. worker overhead, ${chunks} chunks × ${chunkSeconds} s audio (MP3 over HTTP)`,
            value: `${fmt(outside)} ms outside the engine = ${fmt(share * 100)}% of ${fmt(total)} ms (download+probe ${fmt(fetchMs)}, split ≈ ${fmt(bareSplitMs)}, rest ${fmt(rest)} ms)`,
            yardstick: `engine ${chunks} × ${chunkMs} ms = ${engine} ms`,
            ratio: `${fmt(total / engine)}× engine time`,
            goal: '— (none set)',
            met: null,
            numbers: { outsideMs: outside, totalMs: total, engineMs: engine, engineMeasuredMs: engineMeasured, share, fetchMs, bareSplitMs, restMs: rest, perChunkOverheadMs: (outside - fetchMs) / chunks },
          },
        ],
        details: { chunks, chunkSeconds, chunkMs, audioSeconds, audioBytes: audio.length, runs: timings, bareExtractMs: extractMs },
      };
    } finally {
      await stopAll([worker]);
      await server?.close();
      await queue.close();
    }
  },
};
