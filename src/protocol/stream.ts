import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import type { ConsumerInfo, JetStreamManager, StreamInfo } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { TASK_KINDS } from '../api/index.ts';
import type { TaskKind } from '../api/index.ts';
import { DEFAULT_ACK_WAIT_MS, DUPLICATE_WINDOW_MS } from './constants.ts';
import { queueNames, type QueueNames } from './names.ts';
import { consumerBindings, streamSubjects } from './subjects.ts';

export interface EnsureStreamOptions {
  /** Stream name and subject prefix; DESIGN.md's defaults when omitted. */
  names?: QueueNames;
  /** Shorthand for names with only the stream name changed. */
  name?: string;
  /** 1 locally, 3 in production clusters. */
  replicas?: number;
  duplicateWindowMs?: number;
}

/** The stream settings cannot be changed in place; a mismatch needs an operator. */
export class StreamConfigConflictError extends Error {
  override name = 'StreamConfigConflictError';
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

/**
 * Creates the task stream, or brings an existing one to the protocol's
 * settings. Safe to call on every start-up and from several processes.
 */
export async function ensureStream(jsm: JetStreamManager, options: EnsureStreamOptions = {}): Promise<StreamInfo> {
  const names = options.names ?? queueNames({ stream: options.name });
  const name = names.stream;
  const wanted = {
    subjects: streamSubjects(names),
    num_replicas: options.replicas ?? 1,
    duplicate_window: nanos(options.duplicateWindowMs ?? DUPLICATE_WINDOW_MS),
  };
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(name);
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
    try {
      return await jsm.streams.add({
        name,
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
        ...wanted,
      });
    } catch (addErr) {
      // Another process created it between our info and add: fall through to compare.
      info = await jsm.streams.info(name).catch(() => {
        throw addErr;
      });
    }
  }

  const { config } = info;
  if (config.retention !== RetentionPolicy.Workqueue || config.storage !== StorageType.File) {
    throw new StreamConfigConflictError(
      `stream ${name} has retention ${config.retention} and storage ${config.storage}; ` +
        `the task queue needs retention workqueue and storage file, which cannot be changed in place`,
    );
  }
  const sameSubjects =
    config.subjects.length === wanted.subjects.length && wanted.subjects.every((s) => config.subjects.includes(s));
  if (sameSubjects && config.num_replicas === wanted.num_replicas && config.duplicate_window === wanted.duplicate_window) {
    return info;
  }
  return jsm.streams.update(name, { ...config, ...wanted });
}

export interface EnsureConsumersOptions {
  names?: QueueNames;
  stream?: string;
  ackWaitMs?: number;
  kinds?: readonly TaskKind[];
}

/**
 * Creates or updates the durable pull consumers `tq-<kind>-<priority>`, one
 * per subject (a WorkQueue stream needs non-overlapping filters). Delivery is
 * unlimited: the attempt limit is the task's own maxRetries, which the
 * worker checks.
 */
export async function ensureConsumers(
  jsm: JetStreamManager,
  options: EnsureConsumersOptions = {},
): Promise<ConsumerInfo[]> {
  const names = options.names ?? queueNames({ stream: options.stream });
  const stream = names.stream;
  const ackWait = nanos(options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS);
  const results: ConsumerInfo[] = [];
  for (const binding of consumerBindings(options.kinds ?? TASK_KINDS, names)) {
    const wanted = {
      ack_wait: ackWait,
      max_deliver: -1,
      filter_subject: binding.filterSubject,
    };
    let existing: ConsumerInfo | undefined;
    try {
      existing = await jsm.consumers.info(stream, binding.name);
    } catch (err) {
      if (!isApiError(err, JetStreamApiCodes.ConsumerNotFound)) throw err;
    }
    if (existing === undefined) {
      results.push(
        await jsm.consumers.add(stream, {
          durable_name: binding.name,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ...wanted,
        }),
      );
      continue;
    }
    const c = existing.config;
    if (c.ack_wait === wanted.ack_wait && c.max_deliver === wanted.max_deliver && c.filter_subject === wanted.filter_subject) {
      results.push(existing);
    } else {
      results.push(await jsm.consumers.update(stream, binding.name, wanted));
    }
  }
  return results;
}
