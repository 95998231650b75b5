import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { V1Lease } from '@kubernetes/client-node';
import { FakeClock, flushAsync } from '../../../src/controller/runtime/clock.ts';
import {
  AlreadyExistsError,
  ConflictError,
  NotFoundError,
  TransientApiError,
} from '../../../src/controller/runtime/errors.ts';
import type { CallOptions } from '../../../src/controller/runtime/kube-client.ts';
import { LeaderElector, type LeaseClient } from '../../../src/controller/runtime/leader-election.ts';

/** One Lease object with the API server's optimistic concurrency. JSON round trips mimic the wire. */
class LeaseStore {
  lease: V1Lease | undefined;
  private rv = 0;

  read(): V1Lease {
    if (!this.lease) throw new NotFoundError('lease not found', { code: 404 });
    return JSON.parse(JSON.stringify(this.lease)) as V1Lease;
  }

  write(lease: V1Lease): V1Lease {
    const stored = JSON.parse(JSON.stringify(lease)) as V1Lease;
    stored.metadata = { ...stored.metadata, resourceVersion: String(++this.rv) };
    this.lease = stored;
    return this.read();
  }

  get holder(): string | undefined {
    return this.lease?.spec?.holderIdentity;
  }
}

class FakeLeaseClient implements LeaseClient {
  private readonly store: LeaseStore;
  /** Simulates an unreachable API server for this replica only. */
  down = false;

  constructor(store: LeaseStore) {
    this.store = store;
  }

  private check(opts?: CallOptions): void {
    if (opts?.signal?.aborted) throw opts.signal.reason;
    if (this.down) throw new TransientApiError('connect ECONNREFUSED');
  }

  async getLease(_ns: string, _name: string, opts?: CallOptions): Promise<V1Lease> {
    this.check(opts);
    return this.store.read();
  }

  async createLease(_ns: string, lease: V1Lease, opts?: CallOptions): Promise<V1Lease> {
    this.check(opts);
    if (this.store.lease) throw new AlreadyExistsError('exists', { code: 409, reason: 'AlreadyExists' });
    return this.store.write(lease);
  }

  async replaceLease(_ns: string, _name: string, lease: V1Lease, opts?: CallOptions): Promise<V1Lease> {
    this.check(opts);
    const current = this.store.read();
    if (lease.metadata?.resourceVersion !== current.metadata?.resourceVersion) {
      throw new ConflictError('the object has been modified', { code: 409, reason: 'Conflict' });
    }
    return this.store.write(lease);
  }
}

interface Candidate {
  elector: LeaderElector;
  client: FakeLeaseClient;
  log: string[];
  signals: AbortSignal[];
}

let electors: LeaderElector[] = [];

afterEach(async () => {
  await Promise.all(electors.map((e) => e.stop()));
  electors = [];
});

function candidate(
  store: LeaseStore,
  clock: FakeClock,
  identity: string,
  extra: { releaseOnStop?: boolean; onStartedLeading?: (signal: AbortSignal) => void | Promise<void> } = {},
): Candidate {
  const client = new FakeLeaseClient(store);
  const log: string[] = [];
  const signals: AbortSignal[] = [];
  const elector = new LeaderElector({
    client,
    namespace: 'ns',
    name: 'task-queue-controller',
    identity,
    clock,
    random: () => 0,
    ...(extra.releaseOnStop === undefined ? {} : { releaseOnStop: extra.releaseOnStop }),
    onStartedLeading: (signal) => {
      log.push('started');
      signals.push(signal);
      return extra.onStartedLeading?.(signal);
    },
    onStoppedLeading: () => log.push('stopped'),
    onNewLeader: (id) => log.push(`leader:${id}`),
  });
  electors.push(elector);
  return { elector, client, log, signals };
}

/** Advances the fake clock in small steps so the electors' async rounds interleave as in real time. */
async function run(clock: FakeClock, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) await clock.advanceAsync(Math.min(step, ms - t));
}

describe('LeaderElector', () => {
  it('creates and takes a lease that does not exist', async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const a = candidate(store, clock, 'a');
    a.elector.start();
    await flushAsync();
    assert.equal(a.elector.isLeader(), true);
    assert.deepEqual(a.log, ['leader:a', 'started']);
    assert.equal(store.holder, 'a');
    assert.equal(store.lease?.spec?.leaseDurationSeconds, 15);
    assert.equal(store.lease?.spec?.leaseTransitions, 0);
    assert.match(String(store.lease?.spec?.renewTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'MicroTime format');
  });

  it('renews every retry period while leading', async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const a = candidate(store, clock, 'a');
    a.elector.start();
    await flushAsync();
    const renewTimes = new Set<string>();
    for (let i = 0; i < 5; i++) {
      await run(clock, 2000);
      renewTimes.add(String(store.lease?.spec?.renewTime));
    }
    assert.equal(renewTimes.size, 5);
    assert.equal(store.lease?.spec?.leaseTransitions, 0, 'renewing is not a transition');
    assert.equal(a.elector.isLeader(), true);
  });

  it('lets only one of two candidates lead, and tells the other who leads', async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const a = candidate(store, clock, 'a');
    const b = candidate(store, clock, 'b');
    a.elector.start();
    b.elector.start();
    await run(clock, 30_000);
    const leaders = [a, b].filter((c) => c.elector.isLeader());
    assert.equal(leaders.length, 1);
    const follower = leaders[0] === a ? b : a;
    assert.equal(follower.elector.getLeader(), leaders[0]!.elector.identity);
    assert.deepEqual(follower.log, [`leader:${leaders[0]!.elector.identity}`]);
  });

  it('hands over at once when the leader stops gracefully', async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    let wound = false;
    const a = candidate(store, clock, 'a', {
      onStartedLeading: async (signal) => {
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        wound = true;
      },
    });
    a.elector.start();
    await flushAsync();
    const b = candidate(store, clock, 'b');
    b.elector.start();
    await run(clock, 5000);
    assert.equal(b.elector.isLeader(), false);

    await a.elector.stop();
    assert.equal(a.signals[0]?.aborted, true);
    assert.equal(wound, true, 'stop waited for the leader callback to wind down');
    assert.equal(store.holder, '', 'released');
    assert.equal(store.lease?.spec?.leaseDurationSeconds, 1);
    assert.deepEqual(a.log, ['leader:a', 'started', 'stopped']);

    const released = clock.now();
    while (!b.elector.isLeader() && clock.now() - released < 15_000) await clock.advanceAsync(100);
    assert.equal(b.elector.isLeader(), true);
    assert.ok(clock.now() - released <= 2000 * 2.2, `took ${clock.now() - released} ms, within one retry`);
    assert.equal(store.lease?.spec?.leaseTransitions, 1);
  });

  it('replaces a crashed leader only after the lease duration, timed by its own observation', async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const a = candidate(store, clock, 'a');
    a.elector.start();
    await flushAsync();
    const b = candidate(store, clock, 'b');
    b.elector.start();
    await run(clock, 4000);
    // The leader's process freezes: no renewals, no release.
    a.client.down = true;
    const lastRenew = Date.parse(String(store.lease?.spec?.renewTime));
    while (!b.elector.isLeader() && clock.now() - lastRenew < 30_000) await clock.advanceAsync(100);
    const waited = clock.now() - lastRenew;
    assert.equal(b.elector.isLeader(), true);
    assert.ok(waited >= 15_000, `took over after ${waited} ms, not before the lease expired`);
    assert.ok(waited <= 15_000 + 2000 * 2.2 + 2000, `took over after ${waited} ms`);
    assert.equal(store.holder, 'b');
  });

  it('does not judge expiry by the holder clock: a renewed lease with old timestamps stays held', async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    // A leader whose clock is a day behind keeps renewing.
    const skewed = (): void => {
      store.write({
        metadata: { name: 'task-queue-controller', namespace: 'ns' },
        spec: {
          holderIdentity: 'skewed',
          leaseDurationSeconds: 15,
          renewTime: new Date(clock.now() - 86_400_000) as never,
          leaseTransitions: 0,
        },
      });
    };
    skewed();
    const b = candidate(store, clock, 'b');
    b.elector.start();
    for (let i = 0; i < 30; i++) {
      await run(clock, 2000);
      skewed();
    }
    assert.equal(b.elector.isLeader(), false);
    assert.equal(b.elector.getLeader(), 'skewed');
  });

  it('steps down when it cannot renew within the renew deadline, before the lease expires', async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const a = candidate(store, clock, 'a');
    a.elector.start();
    await flushAsync();
    await run(clock, 4000);
    const lastRenew = Date.parse(String(store.lease?.spec?.renewTime));
    a.client.down = true;
    while (a.elector.isLeader() && clock.now() - lastRenew < 20_000) await clock.advanceAsync(100);
    const after = clock.now() - lastRenew;
    assert.equal(a.elector.isLeader(), false);
    assert.ok(after >= 10_000 && after < 15_000, `stepped down after ${after} ms`);
    assert.equal(a.signals[0]?.aborted, true);
    assert.deepEqual(a.log.slice(-1), ['stopped']);
    // It campaigns again and wins back the (now expired, still its own) lease once the API returns.
    a.client.down = false;
    await run(clock, 5000);
    assert.equal(a.elector.isLeader(), true);
    assert.equal(a.signals.length, 2);
  });

  it('gives leadership up when the leader callback fails', async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const a = candidate(store, clock, 'a', {
      onStartedLeading: async () => {
        throw new Error('could not start controllers');
      },
    });
    a.elector.start();
    await flushAsync();
    await run(clock, 500);
    assert.equal(a.elector.isLeader(), false);
    assert.equal(store.holder, '', 'released for another replica');
    const b = candidate(store, clock, 'b');
    b.elector.start();
    await run(clock, 5000);
    assert.equal(b.elector.isLeader(), true);
  });

  it('keeps the lease on stop when releaseOnStop is false', async () => {
    const clock = new FakeClock();
    const store = new LeaseStore();
    const a = candidate(store, clock, 'a', { releaseOnStop: false });
    a.elector.start();
    await flushAsync();
    await a.elector.stop();
    assert.equal(store.holder, 'a');
    assert.equal(clock.pendingTimers(), 0);
  });

  it('rejects timing settings that cannot work', () => {
    const client = new FakeLeaseClient(new LeaseStore());
    const base = { client, namespace: 'ns', name: 'l', identity: 'a', onStartedLeading: () => {} };
    assert.throws(() => new LeaderElector({ ...base, leaseDurationSeconds: 10, renewDeadlineSeconds: 10 }));
    assert.throws(() => new LeaderElector({ ...base, renewDeadlineSeconds: 2, retryPeriodSeconds: 2 }));
    assert.throws(() => new LeaderElector({ ...base, identity: '' }));
  });
});
