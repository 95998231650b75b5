// Leader election between two electors on a real Lease: one leader at a
// time, a graceful stop hands over at once, a crashed leader is replaced
// once its lease expires. Timings are scaled down (lease 4 s, renew 3 s,
// retry 0.5 s) to keep the test short; the logic is the same at 15/10/2.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KubeClient, LeaderElector } from '../../../src/controller/runtime/index.ts';
import { createTestNamespace, deleteTestNamespace, testEnv, waitFor } from '../../harness/index.ts';

const LEASE_SECONDS = 4;
const RENEW_DEADLINE_SECONDS = 3;
const RETRY_SECONDS = 0.5;

interface Replica {
  elector: LeaderElector;
  /** Wall-clock times at which this replica started and stopped leading. */
  terms: { started: number; stopped?: number }[];
  newLeaders: string[];
}

describe('LeaderElector against a real apiserver', () => {
  const { kc } = testEnv();
  let ns: string;
  let client: KubeClient;
  const replicas: Replica[] = [];

  before(async () => {
    ns = await createTestNamespace(kc, 'rt-leader');
    client = new KubeClient(kc);
  });

  after(async () => {
    await Promise.all(replicas.map((r) => r.elector.stop()));
    await deleteTestNamespace(kc, ns);
  });

  function replica(lease: string, identity: string, releaseOnStop = true): Replica {
    const r: Replica = { elector: undefined as never, terms: [], newLeaders: [] };
    r.elector = new LeaderElector({
      client,
      namespace: ns,
      name: lease,
      identity,
      leaseDurationSeconds: LEASE_SECONDS,
      renewDeadlineSeconds: RENEW_DEADLINE_SECONDS,
      retryPeriodSeconds: RETRY_SECONDS,
      releaseOnStop,
      onStartedLeading: () => {
        r.terms.push({ started: Date.now() });
      },
      onStoppedLeading: () => {
        const term = r.terms.at(-1);
        if (term) term.stopped = Date.now();
      },
      onNewLeader: (id) => r.newLeaders.push(id),
    });
    replicas.push(r);
    return r;
  }

  /** Samples both replicas until `ms` passes and fails if both ever lead at once. */
  async function neverBothLead(a: Replica, b: Replica, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      assert.ok(!(a.elector.isLeader() && b.elector.isLeader()), 'two leaders at once');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('elects exactly one of two candidates, and the other learns who leads', async () => {
    const a = replica('one-leader', 'replica-a');
    const b = replica('one-leader', 'replica-b');
    a.elector.start();
    b.elector.start();
    await waitFor('a leader', () => a.elector.isLeader() || b.elector.isLeader(), { timeoutMs: 10_000 });
    await neverBothLead(a, b, 3 * LEASE_SECONDS * 1000);
    const [leader, follower] = a.elector.isLeader() ? [a, b] : [b, a];
    assert.equal(leader.terms.length, 1, 'the leader kept its lease throughout');
    assert.equal(follower.terms.length, 0);
    assert.equal(follower.elector.getLeader(), leader.elector.identity);
    const lease = await client.getLease(ns, 'one-leader');
    assert.equal(lease.spec?.holderIdentity, leader.elector.identity);
    assert.equal(lease.spec?.leaseDurationSeconds, LEASE_SECONDS);
    await Promise.all([a.elector.stop(), b.elector.stop()]);
  });

  it('hands over within a retry period when the leader stops gracefully', async () => {
    const a = replica('handover', 'replica-a');
    a.elector.start();
    await waitFor('a to lead', () => a.elector.isLeader(), { timeoutMs: 10_000 });
    const b = replica('handover', 'replica-b');
    b.elector.start();
    await neverBothLead(a, b, 2000);
    assert.equal(b.elector.isLeader(), false);

    await a.elector.stop();
    const released = Date.now();
    const lease = await client.getLease(ns, 'handover');
    assert.ok(!lease.spec?.holderIdentity || lease.spec.holderIdentity === 'replica-b', 'the lease was released');
    await waitFor('b to lead', () => b.elector.isLeader(), { timeoutMs: LEASE_SECONDS * 1000 });
    const took = Date.now() - released;
    assert.ok(took < LEASE_SECONDS * 1000, `handover took ${took} ms, less than a lease duration`);
    assert.equal((await client.getLease(ns, 'handover')).spec?.leaseTransitions, 1);
    await b.elector.stop();
  });

  it('replaces a crashed leader once its lease has expired, not before', async () => {
    const a = replica('crash', 'replica-a', false);
    a.elector.start();
    await waitFor('a to lead', () => a.elector.isLeader(), { timeoutMs: 10_000 });
    const b = replica('crash', 'replica-b');
    b.elector.start();
    await neverBothLead(a, b, 1500);

    // No release: the lease stays held by a until it expires, as after a crash.
    await a.elector.stop();
    const lastRenew = Date.parse(String((await client.getLease(ns, 'crash')).spec?.renewTime));
    assert.equal((await client.getLease(ns, 'crash')).spec?.holderIdentity, 'replica-a');
    await waitFor('b to take over', () => b.elector.isLeader(), { timeoutMs: 3 * LEASE_SECONDS * 1000 });
    const waited = Date.now() - lastRenew;
    assert.ok(waited >= LEASE_SECONDS * 1000, `took over ${waited} ms after the last renewal, before expiry`);
    assert.ok(waited <= (LEASE_SECONDS + 2 * RETRY_SECONDS * 2.2 + 1) * 1000, `took over only after ${waited} ms`);
    const lease = await client.getLease(ns, 'crash');
    assert.equal(lease.spec?.holderIdentity, 'replica-b');
    assert.equal(lease.spec?.leaseTransitions, 1);
    await b.elector.stop();
  });
});
