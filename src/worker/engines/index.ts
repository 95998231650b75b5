// Picks the engine named by the worker's config.
import type { Logger } from 'pino';
import type { PipelineSettings } from '../pipeline/settings.ts';
import { PipelineReason, retryable } from '../pipeline/failures.ts';
import { ExecEngine } from './exec.ts';
import { FakeEngine } from './fake.ts';
import { OpenAiEngine } from './openai.ts';
import type { SpeechEngine } from './engine.ts';

export type {
  AudioChunk,
  ChunkDiarization,
  ChunkTranscript,
  DiarizeOptions,
  KnownSpeaker,
  SpeakerTurn,
  SpeechEngine,
  TaskIdentity,
  TranscribeOptions,
  TranscriptSegment,
} from './engine.ts';
export { ExecEngine, PERMANENT_EXIT_CODES, parseProgressLine } from './exec.ts';
export { FakeEngine } from './fake.ts';
export { OpenAiEngine, transcriptionsEndpoint } from './openai.ts';

/**
 * A misconfigured engine is the worker's fault, not the task's: the error is
 * retryable, so the task goes back to the queue for a worker that works.
 */
export function createEngine(settings: PipelineSettings, logger?: Logger): SpeechEngine {
  switch (settings.engine) {
    case 'fake':
      return new FakeEngine({ chunkMs: settings.fakeChunkMs });
    case 'openai':
      if (!settings.engineOpenaiUrl) {
        throw retryable(PipelineReason.EngineMisconfigured, 'engine "openai" needs TQ_ENGINE_OPENAI_URL');
      }
      return new OpenAiEngine({
        url: settings.engineOpenaiUrl,
        apiKey: settings.engineOpenaiApiKey,
        model: settings.engineOpenaiModel,
        timeoutMs: settings.engineTimeoutSeconds * 1000,
      });
    case 'exec':
      if (settings.engineExecCommand.length === 0) {
        throw retryable(PipelineReason.EngineMisconfigured, 'engine "exec" needs TQ_ENGINE_EXEC_COMMAND');
      }
      return new ExecEngine({
        command: settings.engineExecCommand,
        timeoutMs: settings.engineTimeoutSeconds * 1000,
        killGraceMs: settings.engineKillGraceSeconds * 1000,
        onOutputLine: (line) => logger?.debug({ line: line.slice(0, 500) }, 'Engine output'),
      });
  }
}
