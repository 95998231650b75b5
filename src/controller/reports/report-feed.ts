// Follows the workers' reports stream with a consumer group. An entry only
// says "look at this task again": the reconciler reads the state hash, so an
// entry handled twice or claimed from a crashed controller does no harm, and
// entries written while no controller ran are read when the next one starts.
import type { Redis } from 'ioredis';
import { CONTROLLER_CONSUMER_GROUP, parseReportEntry, reportsStreamKey, type Report } from '../../protocol/index.ts';
import type { Logger } from '../runtime/index.ts';

export interface ReportFeedOptions {
  /** A connection of its own: XREADGROUP BLOCK holds it. */
  redis: Redis;
  prefix: string;
  /** This controller's name in the group (the pod name). */
  consumer: string;
  onReport: (report: Report) => void;
  logger: Logger;
  group?: string;
  batchSize?: number;
  blockMs?: number;
  /** Entries another consumer has held this long are taken over (a crashed controller's). */
  claimIdleMs?: number;
}

type StreamEntries = [id: string, fields: string[]][];

export class ReportFeed {
  private readonly options: Required<Omit<ReportFeedOptions, 'onReport' | 'logger' | 'redis'>> & Pick<ReportFeedOptions, 'onReport' | 'logger' | 'redis'>;
  private readonly streamKey: string;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private lastClaim = 0;
  /** True once the group exists and the first read succeeded. */
  healthy = false;

  constructor(options: ReportFeedOptions) {
    this.options = {
      group: CONTROLLER_CONSUMER_GROUP,
      batchSize: 512,
      blockMs: 1000,
      claimIdleMs: 30_000,
      ...options,
    };
    this.streamKey = reportsStreamKey(options.prefix);
  }

  start(): void {
    if (this.loop) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.loop = undefined;
  }

  private async ensureGroup(): Promise<void> {
    try {
      // '0': a new group starts from the beginning of the stream, so reports
      // written before any controller ran are not skipped.
      await this.options.redis.xgroup('CREATE', this.streamKey, this.options.group, '0', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw err;
    }
  }

  private async run(): Promise<void> {
    const { redis, logger } = this.options;
    let backoffMs = 100;
    let groupReady = false;
    // Our own pending entries first: a restart with the same pod name resumes them.
    let readPendingFirst = true;
    while (!this.stopped) {
      try {
        if (!groupReady) {
          await this.ensureGroup();
          groupReady = true;
        }
        if (Date.now() - this.lastClaim > this.options.claimIdleMs) {
          await this.claimAbandoned();
          this.lastClaim = Date.now();
        }
        const id = readPendingFirst ? '0' : '>';
        const reply = (await redis.xreadgroup(
          'GROUP', this.options.group, this.options.consumer,
          'COUNT', this.options.batchSize,
          'BLOCK', readPendingFirst ? 1 : this.options.blockMs,
          'STREAMS', this.streamKey, id,
        )) as [string, StreamEntries][] | null;
        const entries = reply?.[0]?.[1] ?? [];
        if (readPendingFirst && entries.length === 0) readPendingFirst = false;
        await this.handle(entries);
        this.healthy = true;
        backoffMs = 100;
      } catch (err) {
        if (this.stopped) break;
        this.healthy = false;
        if (/NOGROUP/.test((err as Error).message)) groupReady = false;
        logger.warn({ err: (err as Error).message, retryInMs: backoffMs }, 'Reading worker reports failed');
        await new Promise((r) => setTimeout(r, backoffMs));
        backoffMs = Math.min(backoffMs * 2, 10_000);
      }
    }
  }

  private async claimAbandoned(): Promise<void> {
    let cursor = '0-0';
    do {
      const [next, entries] = (await this.options.redis.xautoclaim(
        this.streamKey, this.options.group, this.options.consumer, this.options.claimIdleMs, cursor, 'COUNT', this.options.batchSize,
      )) as [string, StreamEntries, ...unknown[]];
      await this.handle(entries.filter((e) => Array.isArray(e) && e[1]));
      cursor = next;
    } while (cursor !== '0-0' && !this.stopped);
  }

  private async handle(entries: StreamEntries): Promise<void> {
    if (entries.length === 0) return;
    for (const [id, fields] of entries) {
      try {
        this.options.onReport(parseReportEntry(fields));
      } catch (err) {
        // A malformed entry cannot become valid by reading it again.
        this.options.logger.warn({ entry: id, err: (err as Error).message }, 'Ignored malformed worker report');
      }
    }
    await this.options.redis.xack(this.streamKey, this.options.group, ...entries.map(([id]) => id));
  }
}
