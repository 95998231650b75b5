// The pipeline's own settings: chunking, limits, timeouts, engine choice.
//
// The worker's config (src/worker/config.ts) is parsed once at start-up; the
// fields below are read from it when it carries them. PIPELINE_ENV_SCHEMA is
// exported so that config can include these variables in its own zod
// schema; a field the config does not carry is read from the environment
// with the same schema (once), so the pipeline works before and after that
// merge and a bad value is reported naming its variable.
import { z } from 'zod';

export const ENGINE_NAMES = ['openai', 'exec', 'fake'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

export const CHUNK_FORMATS = ['wav', 'flac'] as const;
export type ChunkFormat = (typeof CHUNK_FORMATS)[number];

export interface PipelineSettings {
  engine: EngineName;
  /** Base URL of an OpenAI-compatible server, e.g. http://whisper:8000 or https://api.openai.com/v1. */
  engineOpenaiUrl: string | undefined;
  /** When set, sent as `model` instead of the task's model (the model the pool serves). */
  engineOpenaiModel: string | undefined;
  engineOpenaiApiKey: string | undefined;
  /** argv of the exec engine; no shell. */
  engineExecCommand: string[];
  /** One engine call (an HTTP request, a command run) may take at most this long. */
  engineTimeoutSeconds: number;
  /** SIGTERM to SIGKILL, for an exec engine being stopped. */
  engineKillGraceSeconds: number;
  /** Per-chunk sleep of the fake engine. */
  fakeChunkMs: number;
  /** Downloads and chunk files go under `<audioDir>/<uid>/`. */
  audioDir: string;
  audioMaxBytes: number;
  /** file:// URIs must resolve inside one of these directories. */
  audioFileRoots: string[];
  /** A download that receives nothing for this long is abandoned (retryable). */
  audioFetchIdleTimeoutSeconds: number;
  /** Secrets named by audio.secretRef are mounted at `<secretsDir>/<name>/`. */
  secretsDir: string;
  chunkSeconds: number;
  chunkFormat: ChunkFormat;
}

const DEFAULTS = {
  engine: 'fake',
  engineTimeoutSeconds: 1800,
  engineKillGraceSeconds: 10,
  fakeChunkMs: 50,
  audioDir: '/tmp/task-queue/audio',
  audioMaxBytes: 2 * 1024 * 1024 * 1024,
  audioFetchIdleTimeoutSeconds: 60,
  secretsDir: '/var/run/secrets/taskqueue.dev',
  chunkSeconds: 300,
  chunkFormat: 'wav',
} as const;

const positiveInt = () => z.coerce.number().int().positive();
const list = () =>
  z
    .string()
    .transform((value) => value.split(/[,:]/).map((item) => item.trim()).filter((item) => item !== ''));

/** Environment variables of the pipeline, all optional. */
export const PIPELINE_ENV_SCHEMA = z.object({
  TQ_ENGINE: z.enum(ENGINE_NAMES).optional(),
  TQ_ENGINE_OPENAI_URL: z.url().optional(),
  TQ_ENGINE_OPENAI_MODEL: z.string().min(1).optional(),
  TQ_ENGINE_OPENAI_API_KEY: z.string().min(1).optional(),
  /** JSON array of strings, e.g. ["python3","/app/engine.py","--device","cuda"]. */
  TQ_ENGINE_EXEC_COMMAND: z
    .string()
    .transform((value, ctx) => {
      try {
        const parsed: unknown = JSON.parse(value);
        if (Array.isArray(parsed) && parsed.length > 0 && parsed.every((item) => typeof item === 'string')) return parsed as string[];
      } catch {
        // reported below
      }
      ctx.addIssue({ code: 'custom', message: 'must be a JSON array of strings, e.g. ["python3","engine.py"]' });
      return z.NEVER;
    })
    .optional(),
  TQ_ENGINE_TIMEOUT_SECONDS: positiveInt().optional(),
  TQ_ENGINE_KILL_GRACE_SECONDS: z.coerce.number().int().min(0).optional(),
  TQ_FAKE_CHUNK_MS: z.coerce.number().int().min(0).optional(),
  TQ_AUDIO_DIR: z.string().min(1).optional(),
  TQ_AUDIO_MAX_BYTES: positiveInt().optional(),
  /** Comma- or colon-separated directories. */
  TQ_AUDIO_FILE_ROOTS: list().optional(),
  TQ_AUDIO_FETCH_IDLE_TIMEOUT_SECONDS: positiveInt().optional(),
  TQ_SECRETS_DIR: z.string().min(1).optional(),
  TQ_CHUNK_SECONDS: positiveInt().optional(),
  TQ_CHUNK_FORMAT: z.enum(CHUNK_FORMATS).optional(),
});
export type PipelineEnv = z.output<typeof PIPELINE_ENV_SCHEMA>;

/** What the pipeline reads off the worker's config object; every field optional. */
export type PipelineConfigInput = Partial<PipelineSettings>;

export class PipelineSettingsError extends Error {
  override name = 'PipelineSettingsError';
}

export function parsePipelineEnv(env: NodeJS.ProcessEnv): PipelineEnv {
  const parsed = PIPELINE_ENV_SCHEMA.safeParse(env);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
  throw new PipelineSettingsError(`invalid pipeline environment: ${problems}`);
}

let envCache: PipelineEnv | undefined;

function pick<T>(configValue: unknown, isValid: (value: unknown) => value is T, fallback: T): T {
  return isValid(configValue) ? configValue : fallback;
}

const isString = (value: unknown): value is string => typeof value === 'string' && value !== '';
const isNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
const isStringArray = (value: unknown): value is string[] =>
  Array.isArray(value) && value.length > 0 && value.every((item) => typeof item === 'string');
const isEngine = (value: unknown): value is EngineName => ENGINE_NAMES.includes(value as EngineName);
const isChunkFormat = (value: unknown): value is ChunkFormat => CHUNK_FORMATS.includes(value as ChunkFormat);

/**
 * The settings for one run: the config's fields first, then the environment,
 * then the defaults. `env` is for tests; the process environment otherwise.
 */
export function resolvePipelineSettings(config: PipelineConfigInput, env?: NodeJS.ProcessEnv): PipelineSettings {
  const fromEnv = env ? parsePipelineEnv(env) : (envCache ??= parsePipelineEnv(process.env));
  const audioDir = pick(config.audioDir, isString, fromEnv.TQ_AUDIO_DIR ?? DEFAULTS.audioDir);
  return {
    engine: pick(config.engine, isEngine, fromEnv.TQ_ENGINE ?? DEFAULTS.engine),
    engineOpenaiUrl: pick(config.engineOpenaiUrl, isString, fromEnv.TQ_ENGINE_OPENAI_URL),
    engineOpenaiModel: pick(config.engineOpenaiModel, isString, fromEnv.TQ_ENGINE_OPENAI_MODEL),
    engineOpenaiApiKey: pick(config.engineOpenaiApiKey, isString, fromEnv.TQ_ENGINE_OPENAI_API_KEY),
    engineExecCommand: pick(config.engineExecCommand, isStringArray, fromEnv.TQ_ENGINE_EXEC_COMMAND ?? []),
    engineTimeoutSeconds: pick(config.engineTimeoutSeconds, isNumber, fromEnv.TQ_ENGINE_TIMEOUT_SECONDS ?? DEFAULTS.engineTimeoutSeconds),
    engineKillGraceSeconds: pick(
      config.engineKillGraceSeconds,
      isNumber,
      fromEnv.TQ_ENGINE_KILL_GRACE_SECONDS ?? DEFAULTS.engineKillGraceSeconds,
    ),
    fakeChunkMs: pick(config.fakeChunkMs, isNumber, fromEnv.TQ_FAKE_CHUNK_MS ?? DEFAULTS.fakeChunkMs),
    audioDir,
    audioMaxBytes: pick(config.audioMaxBytes, isNumber, fromEnv.TQ_AUDIO_MAX_BYTES ?? DEFAULTS.audioMaxBytes),
    // No roots configured means file:// is refused, not "anything goes".
    audioFileRoots: pick(config.audioFileRoots, isStringArray, fromEnv.TQ_AUDIO_FILE_ROOTS ?? []),
    audioFetchIdleTimeoutSeconds: pick(
      config.audioFetchIdleTimeoutSeconds,
      isNumber,
      fromEnv.TQ_AUDIO_FETCH_IDLE_TIMEOUT_SECONDS ?? DEFAULTS.audioFetchIdleTimeoutSeconds,
    ),
    secretsDir: pick(config.secretsDir, isString, fromEnv.TQ_SECRETS_DIR ?? DEFAULTS.secretsDir),
    chunkSeconds: pick(config.chunkSeconds, isNumber, fromEnv.TQ_CHUNK_SECONDS ?? DEFAULTS.chunkSeconds),
    chunkFormat: pick(config.chunkFormat, isChunkFormat, fromEnv.TQ_CHUNK_FORMAT ?? DEFAULTS.chunkFormat),
  };
}
