// The faults the chaos run injects, one at a time on a schedule, each
// recorded with when it started and when the system was whole again.
import { sleep } from '../harness/index.ts';
import type { HistoryTail } from './history.ts';
import type { Rig, WorkerSlot } from './rig.ts';

export const FAULT_KINDS = [
  'worker-sigkill',
  'worker-sigterm',
  'leader-sigkill',
  'nats-restart',
  'redis-restart-aof',
  'redis-restart-no-aof',
  'apiserver-restart',
  'worker-pause',
  'nats-cut',
  'redis-cut',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultRecord {
  kind: FaultKind;
  /** Who was hit: a worker incarnation, a controller, a server. */
  target: string;
  /** The uid the target worker was running when hit, if any. */
  uid?: string;
  start: number;
  /** When the fault was over (the process restarted, the network restored). */
  end: number;
  detail?: string;
}

export interface FaultContext {
  rig: Rig;
  tail: HistoryTail;
  random: () => number;
  /** How long cuts last, and how far past the ack wait a pause lasts, in seconds. */
  cutSeconds: number;
  pauseExtraSeconds: number;
  log: (line: string) => void;
}

/** A worker in the middle of an engine call, preferring the given kind of worker; any running one if none is busy. */
function pickWorker(ctx: FaultContext): { worker: WorkerSlot; uid?: string } {
  const busy = ctx.tail.busy();
  const running = ctx.rig.workers.filter((w) => w.process.running);
  const candidates = running.filter((w) => busy.has(w.name));
  const pool = candidates.length > 0 ? candidates : running;
  const worker = pool[Math.floor(ctx.random() * pool.length)] as WorkerSlot;
  const uid = busy.get(worker.name);
  return uid !== undefined ? { worker, uid } : { worker };
}

export async function injectFault(kind: FaultKind, ctx: FaultContext): Promise<FaultRecord> {
  const { rig } = ctx;
  const start = Date.now();
  const done = (target: string, extra: Partial<FaultRecord> = {}): FaultRecord => ({ kind, target, start, end: Date.now(), ...extra });
  switch (kind) {
    case 'worker-sigkill': {
      const { worker, uid } = pickWorker(ctx);
      const name = worker.name;
      await rig.killWorker(worker);
      ctx.tail.forget(name);
      await sleep(2000);
      rig.startWorker(worker);
      await rig.waitWorkerReady(worker);
      return done(name, uid !== undefined ? { uid } : {});
    }
    case 'worker-sigterm': {
      const { worker, uid } = pickWorker(ctx);
      const name = worker.name;
      await rig.terminateWorker(worker);
      rig.startWorker(worker);
      await rig.waitWorkerReady(worker);
      return done(name, uid !== undefined ? { uid } : {});
    }
    case 'worker-pause': {
      const { worker, uid } = pickWorker(ctx);
      const pids = rig.pauseWorker(worker);
      const seconds = rig.settings.ackWaitSeconds + ctx.pauseExtraSeconds;
      await sleep(seconds * 1000);
      rig.resumeWorker(pids);
      return done(worker.name, { ...(uid !== undefined ? { uid } : {}), detail: `stopped ${seconds}s (${pids.length} processes)` });
    }
    case 'leader-sigkill': {
      const leader = await rig.leader();
      const slot = rig.controllers.find((c) => c.identity === leader) ?? rig.controllers[0];
      if (!slot) throw new Error('no controller to kill');
      await rig.killController(slot);
      await sleep(3000);
      await rig.startController(slot.identity);
      return done(slot.identity, { detail: leader ? 'leader' : 'no leader was known; killed the first replica' });
    }
    case 'nats-restart': {
      await rig.nats.restart();
      return done('nats-server', { detail: 'graceful stop, file store kept' });
    }
    case 'nats-cut': {
      await rig.natsProxy.cut();
      await sleep(ctx.cutSeconds * 1000);
      await rig.natsProxy.restore();
      return done('nats network', { detail: `connections reset and refused for ${ctx.cutSeconds}s` });
    }
    case 'redis-restart-aof': {
      if (!rig.redis.appendOnly) await rig.redis.enableAppendOnly();
      await rig.redis.stop();
      await rig.redis.start(true);
      return done('redis-server', { detail: 'AOF on: data kept' });
    }
    case 'redis-restart-no-aof': {
      await rig.redis.stop();
      await rig.redis.start(false);
      // Back to a persistent Redis for the faults that follow.
      await rig.redis.enableAppendOnly();
      return done('redis-server', { detail: 'AOF off: every key lost' });
    }
    case 'redis-cut': {
      await rig.redisProxy.cut();
      await sleep(ctx.cutSeconds * 1000);
      await rig.redisProxy.restore();
      return done('redis network', { detail: `connections reset and refused for ${ctx.cutSeconds}s` });
    }
    case 'apiserver-restart': {
      await rig.cp.restartApiserver();
      return done('kube-apiserver', { detail: 'etcd kept' });
    }
  }
}

/** The order of faults: every kind once per cycle, shuffled per cycle. */
export function faultSchedule(cycles: number, random: () => number): FaultKind[] {
  const out: FaultKind[] = [];
  for (let c = 0; c < cycles; c++) {
    const cycle = [...FAULT_KINDS];
    for (let i = cycle.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [cycle[i], cycle[j]] = [cycle[j] as FaultKind, cycle[i] as FaultKind];
    }
    out.push(...cycle);
  }
  return out;
}
