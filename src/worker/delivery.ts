// One JetStream delivery, pulled with a no-wait request so a worker takes a
// message only when it is about to run it. (The client's fetch/next wait at
// least a second on an empty consumer and may hand over a message the worker
// then has to give back, which would count as an attempt.)
import { nanos } from '@nats-io/nats-core';
import type { Msg, NatsConnection } from '@nats-io/nats-core';

export interface DeliveryInfo {
  stream: string;
  consumer: string;
  /** 1 on the first delivery of this message; JetStream's count, never reset. */
  deliveryCount: number;
  streamSequence: number;
  deliverySequence: number;
  /** Messages still waiting on the consumer after this one. */
  pending: number;
}

/** The verbs a worker answers a delivery with (docs/protocol.md, "Outcomes"). */
export interface TaskDelivery {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly info: DeliveryInfo;
  ack(): void;
  /** Redeliver after `delayMs`; 0 hands the message to the next puller at once. */
  nak(delayMs?: number): void;
  term(reason?: string): void;
  /** Resets the ack wait: the run is alive. */
  working(): void;
}

/**
 * Reads the ack subject, in either form:
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>` or
 * `$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>.<token>`.
 */
export function parseAckSubject(reply: string): DeliveryInfo | undefined {
  const tokens = reply.split('.');
  if (tokens[0] !== '$JS' || tokens[1] !== 'ACK') return undefined;
  let rest: string[];
  if (tokens.length === 9) rest = tokens.slice(2);
  else if (tokens.length >= 11) rest = tokens.slice(4);
  else return undefined;
  const [stream, consumer, delivered, sseq, dseq, , pending] = rest;
  const numbers = [delivered, sseq, dseq, pending].map((t) => Number(t));
  if (!stream || !consumer || numbers.some((n) => !Number.isSafeInteger(n) || n < 0)) return undefined;
  return {
    stream,
    consumer,
    deliveryCount: numbers[0] as number,
    streamSequence: numbers[1] as number,
    deliverySequence: numbers[2] as number,
    pending: numbers[3] as number,
  };
}

const encoder = new TextEncoder();

class NatsTaskDelivery implements TaskDelivery {
  readonly info: DeliveryInfo;
  private readonly msg: Msg;
  private readonly termReasons: boolean;

  constructor(msg: Msg, info: DeliveryInfo, termReasons: boolean) {
    this.msg = msg;
    this.info = info;
    this.termReasons = termReasons;
  }

  get subject(): string {
    return this.msg.subject;
  }

  get data(): Uint8Array {
    return this.msg.data;
  }

  ack(): void {
    this.msg.respond(encoder.encode('+ACK'));
  }

  nak(delayMs = 0): void {
    const body = delayMs > 0 ? `-NAK ${JSON.stringify({ delay: nanos(delayMs) })}` : '-NAK';
    this.msg.respond(encoder.encode(body));
  }

  term(reason?: string): void {
    // Servers before 2.11 take only a bare +TERM and ignore anything longer,
    // which would leave the message to be redelivered.
    const body = reason && this.termReasons ? `+TERM ${reason.replace(/\s+/g, ' ').slice(0, 256)}` : '+TERM';
    this.msg.respond(encoder.encode(body));
  }

  working(): void {
    this.msg.respond(encoder.encode('+WPI'));
  }
}

/** True when the server accepts a reason after +TERM (nats-server 2.11 and later). */
export function serverTakesTermReason(version: string | undefined): boolean {
  const match = /^v?(\d+)\.(\d+)/.exec(version ?? '');
  if (!match) return false;
  const major = Number(match[1]);
  const minor = Number(match[2]);
  return major > 2 || (major === 2 && minor >= 11);
}

export class PullError extends Error {
  override name = 'PullError';
  readonly code: number | undefined;

  constructor(message: string, code?: number, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * Asks one durable pull consumer for a single message without waiting.
 * Resolves null when it has nothing to deliver right now.
 */
export async function pullOne(
  nc: NatsConnection,
  stream: string,
  consumer: string,
  options: { timeoutMs?: number } = {},
): Promise<TaskDelivery | null> {
  const subject = `$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`;
  const timeoutMs = options.timeoutMs ?? 5000;
  const request = encoder.encode(JSON.stringify({ batch: 1, no_wait: true }));
  // A private inbox per pull. Through the client's shared request
  // multiplexer, a pull that had timed out later threw from inside the client
  // and stalled the connection's requests (nats.js 3.4, nats-server 2.9).
  const msg = await nc.request(subject, request, { timeout: timeoutMs, noMux: true });
  const code = msg.headers?.code ?? 0;
  if (code === 404 || code === 408) return null;
  if (code >= 300) {
    throw new PullError(`pull from ${stream}/${consumer} failed: ${code} ${msg.headers?.description ?? ''}`.trim(), code);
  }
  const info = msg.reply ? parseAckSubject(msg.reply) : undefined;
  if (!info) throw new PullError(`pull from ${stream}/${consumer} returned a message without a JetStream ack subject`);
  return new NatsTaskDelivery(msg, info, serverTakesTermReason(nc.info?.version));
}
