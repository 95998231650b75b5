import type { Redis } from 'ioredis';
import type { NatsConnection } from '@nats-io/nats-core';
import { z } from 'zod';
import { CANCEL_FLAG_TTL_SECONDS, DEFAULT_KEY_PREFIX } from './constants.ts';
import { ProtocolDecodeError, decodeErrorFromZod } from './errors.ts';
import { redisKeys } from './keys.ts';
import { UidSchema } from './message.ts';
import { DEFAULT_QUEUE_NAMES } from './names.ts';
import type { QueueNames } from './names.ts';

export const CancelMessageSchema = z.object({ uid: UidSchema });
export type CancelMessage = z.output<typeof CancelMessageSchema>;

export function encodeCancelMessage(uid: string): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(CancelMessageSchema.parse({ uid })));
}

export function decodeCancelMessage(data: Uint8Array | string): CancelMessage {
  let json: unknown;
  try {
    json = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data));
  } catch (err) {
    throw new ProtocolDecodeError(`cancel message is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = CancelMessageSchema.safeParse(json);
  if (!parsed.success) throw decodeErrorFromZod('cancel message', parsed.error);
  return parsed.data;
}

/**
 * Asks for a task to be cancelled the way the protocol says: the Redis flag
 * first (a worker taking the message later still sees it), then the NATS
 * notice for the worker running it now.
 */
export async function requestCancel(options: {
  redis: Redis;
  nc: NatsConnection;
  uid: string;
  prefix?: string;
  /** The installation's names (see names.ts); DESIGN.md's defaults when absent. */
  names?: QueueNames;
}): Promise<void> {
  const { cancel } = redisKeys(options.prefix ?? DEFAULT_KEY_PREFIX, options.uid);
  await options.redis.set(cancel, new Date().toISOString(), 'EX', CANCEL_FLAG_TTL_SECONDS);
  options.nc.publish((options.names ?? DEFAULT_QUEUE_NAMES).cancelSubject, encodeCancelMessage(options.uid));
  await options.nc.flush();
}

export async function isCancelRequested(redis: Redis, prefix: string, uid: string): Promise<boolean> {
  return (await redis.exists(redisKeys(prefix, uid).cancel)) === 1;
}
