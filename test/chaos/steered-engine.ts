// An OpenAI-compatible transcription server whose answer is chosen by the
// request's `model` field, that is by the task's spec.model, so tasks that
// need different engine failures can run side by side on one worker pool:
//   bad-500       HTTP 500 with a JSON error
//   bad-garbage   HTTP 200 with an HTML page (a proxy in front of a restarting backend)
//   bad-hang      never answers (until the client gives up)
//   slow-<ms>     answers like the default, after <ms> milliseconds
//   anything else verbose_json, one segment per second of the uploaded audio
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { audioDuration } from '../fixtures/audio-duration.ts';

export interface SteeredEngine {
  url: string;
  /** Requests seen, by model. */
  requests: Map<string, number>;
  /** Requests that were left hanging and have since been closed by the client. */
  abandoned: number;
  close(): Promise<void>;
}

export async function startSteeredEngine(): Promise<SteeredEngine> {
  const requests = new Map<string, number>();
  const hanging = new Set<ServerResponse>();
  const state = { abandoned: 0 };
  // A held request whose client goes away counts as abandoned.
  const hold = (res: ServerResponse) => {
    hanging.add(res);
    res.on('close', () => {
      if (hanging.delete(res)) state.abandoned++;
    });
  };
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      void (async () => {
        const form = await new Request('http://localhost/', {
          method: 'POST',
          headers: { 'content-type': req.headers['content-type'] ?? '' },
          body: Buffer.concat(parts),
        }).formData();
        const model = String(form.get('model') ?? '');
        requests.set(model, (requests.get(model) ?? 0) + 1);
        if (model === 'bad-500') {
          res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"internal error"}}');
        } else if (model === 'bad-garbage') {
          res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>502 Bad Gateway</body></html>');
        } else if (model === 'bad-hang') {
          hold(res);
        } else {
          const delay = /^slow-(\d+)$/.exec(model);
          if (delay) {
            hold(res);
            await new Promise((r) => setTimeout(r, Number(delay[1])));
            if (!hanging.delete(res)) return;
          }
          const file = form.get('file');
          const audio = file instanceof File ? Buffer.from(await file.arrayBuffer()) : Buffer.alloc(0);
          const duration = audioDuration(audio) ?? 1;
          const segments = [];
          for (let start = 0; start < duration - 0.01; start += 1) {
            segments.push({ id: segments.length, start, end: Math.min(duration, start + 1), text: `part ${segments.length}` });
          }
          const body = JSON.stringify({ task: 'transcribe', language: 'english', duration, text: segments.map((s) => s.text).join(' '), segments });
          res.writeHead(200, { 'content-type': 'application/json' }).end(body);
        }
      })().catch((err: unknown) => res.writeHead(400).end(String(err)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get abandoned() {
      return state.abandoned;
    },
    async close() {
      for (const res of hanging) res.destroy();
      hanging.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
