// What the pipeline needs from the worker runtime for one run: the
// runtime's TaskContext, except that only the pipeline's own settings are
// required of the config, so tests can build a context without a worker.
import type { TaskContext, TaskRunResult } from '../task-context.ts';
import type { PipelineConfigInput } from './settings.ts';

export type PipelineContext = Omit<TaskContext, 'config'> & { config: PipelineConfigInput };

export type PipelineResult = TaskRunResult;
