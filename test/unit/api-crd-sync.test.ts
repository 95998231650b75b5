// The CRDs (what the apiserver enforces) and the zod schemas (what our code
// enforces) are written by hand, side by side. This test walks both, field by
// field, and fails on any difference in types, integer formats, enums,
// defaults, bounds, patterns or required lists, so neither can drift alone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { z } from 'zod';
import {
  AUDIO_URI_SCHEMES,
  CATEGORY,
  GROUP,
  KINDS,
  PLURALS,
  SHORT_NAMES,
  SINGULARS,
  VERSION,
  crdName,
  DiarizationTaskSpecSchema,
  TaskStatusSchema,
  TranscriptionTaskSpecSchema,
  WorkerPoolSpecSchema,
  WorkerPoolStatusSchema,
} from '../../src/api/index.ts';
import type { Kind } from '../../src/api/index.ts';

type JsonSchema = { [key: string]: unknown };

interface Crd {
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames?: string[]; categories?: string[] };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources?: { status?: object; scale?: object };
      additionalPrinterColumns?: { name: string; type: string; jsonPath: string; priority?: number }[];
      schema: { openAPIV3Schema: JsonSchema };
    }[];
  };
}

function loadCrd(kind: Kind): Crd {
  const path = fileURLToPath(new URL(`../../crds/${GROUP}_${PLURALS[kind]}.yaml`, import.meta.url));
  return parse(readFileSync(path, 'utf8')) as Crd;
}

function servedVersion(crd: Crd) {
  const version = crd.spec.versions.find((v) => v.name === VERSION);
  assert.ok(version, `${crd.metadata.name} has no version ${VERSION}`);
  return version;
}

function crdProperty(kind: Kind, name: 'spec' | 'status'): JsonSchema {
  const root = servedVersion(loadCrd(kind)).schema.openAPIV3Schema;
  const node = (root.properties as Record<string, JsonSchema> | undefined)?.[name];
  assert.ok(node, `${kind} CRD has no ${name} schema`);
  return node;
}

// Canonical form: only the keywords both sides can express.
interface Canon {
  type?: string;
  format?: string;
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  required: string[];
  properties: Record<string, Canon>;
  items?: Canon;
}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const SCALAR_KEYWORDS = ['type', 'format', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'minItems', 'maxItems'] as const;

function canonicalize(node: JsonSchema): Canon {
  const canon: Canon = { required: [], properties: {} };
  for (const key of SCALAR_KEYWORDS) {
    if (node[key] !== undefined) (canon as unknown as Record<string, unknown>)[key] = node[key];
  }
  if (Array.isArray(node.enum)) canon.enum = node.enum;
  if ('default' in node) canon.default = node.default;
  if (Array.isArray(node.required)) canon.required = [...(node.required as string[])].sort();
  for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, JsonSchema>)) {
    canon.properties[name] = canonicalize(child);
  }
  if (node.items && typeof node.items === 'object') canon.items = canonicalize(node.items as JsonSchema);
  if (canon.type === 'integer') {
    // An integer's width is its format; the bounds that merely restate the
    // width are noise on both sides.
    canon.format ??= 'int64';
    if (canon.minimum === INT32_MIN || canon.minimum === Number.MIN_SAFE_INTEGER) delete canon.minimum;
    if (canon.maximum === INT32_MAX || canon.maximum === Number.MAX_SAFE_INTEGER) delete canon.maximum;
  }
  if (canon.format === 'date-time') delete canon.pattern; // zod spells RFC 3339 out as a regex
  // JavaScript escapes '/' in RegExp#source; RE2 and ECMAScript read both the same.
  if (canon.pattern !== undefined) canon.pattern = canon.pattern.replaceAll('\\/', '/');
  return canon;
}

function zodJsonSchema(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, {
    // Input side: a defaulted field is optional to the user, as in the CRD.
    io: 'input',
    override: (ctx) => {
      const format = (ctx.zodSchema._zod.def as { format?: unknown }).format;
      if (format === 'int32') ctx.jsonSchema.format = 'int32';
      if (format === 'safeint') ctx.jsonSchema.format = 'int64';
    },
  }) as JsonSchema;
}

/** Every difference between two canonical schemas, one line each, by field path. */
function differences(crd: Canon, zod: Canon, path: string): string[] {
  const out: string[] = [];
  const keywords = [...SCALAR_KEYWORDS, 'enum', 'default'] as const;
  for (const key of keywords) {
    const a = (crd as unknown as Record<string, unknown>)[key];
    const b = (zod as unknown as Record<string, unknown>)[key];
    if (!isDeepStrictEqual(a, b)) out.push(`${path}: ${key} is ${JSON.stringify(a)} in the CRD but ${JSON.stringify(b)} in zod`);
  }
  if (!isDeepStrictEqual(crd.required, zod.required)) {
    out.push(`${path}: required is ${JSON.stringify(crd.required)} in the CRD but ${JSON.stringify(zod.required)} in zod`);
  }
  const names = new Set([...Object.keys(crd.properties), ...Object.keys(zod.properties)]);
  for (const name of [...names].sort()) {
    const a = crd.properties[name];
    const b = zod.properties[name];
    if (!a) out.push(`${path}.${name}: only in zod`);
    else if (!b) out.push(`${path}.${name}: only in the CRD`);
    else out.push(...differences(a, b, `${path}.${name}`));
  }
  if (crd.items && zod.items) out.push(...differences(crd.items, zod.items, `${path}[]`));
  else if (crd.items || zod.items) out.push(`${path}: items defined on one side only`);
  return out;
}

function isDeepStrictEqual(a: unknown, b: unknown): boolean {
  try {
    assert.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

const pairs: { kind: Kind; field: 'spec' | 'status'; schema: z.ZodType }[] = [
  { kind: 'TranscriptionTask', field: 'spec', schema: TranscriptionTaskSpecSchema },
  { kind: 'TranscriptionTask', field: 'status', schema: TaskStatusSchema },
  { kind: 'DiarizationTask', field: 'spec', schema: DiarizationTaskSpecSchema },
  { kind: 'DiarizationTask', field: 'status', schema: TaskStatusSchema },
  { kind: 'WorkerPool', field: 'spec', schema: WorkerPoolSpecSchema },
  { kind: 'WorkerPool', field: 'status', schema: WorkerPoolStatusSchema },
];

for (const { kind, field, schema } of pairs) {
  test(`${kind} ${field}: CRD schema and zod schema agree field by field`, () => {
    const crd = canonicalize(crdProperty(kind, field));
    const zod = canonicalize(zodJsonSchema(schema));
    assert.deepEqual(differences(crd, zod, field), []);
    // Guard against a comparison that passes because it compared nothing.
    assert.ok(Object.keys(crd.properties).length > 3, `${kind} ${field} has too few properties to be real`);
  });
}

test('the comparison reports a drifted default, enum, bound, pattern, required list and field', () => {
  const crd = canonicalize(crdProperty('TranscriptionTask', 'spec'));
  const zod = canonicalize(zodJsonSchema(TranscriptionTaskSpecSchema));
  const drifted = structuredClone(crd);
  drifted.properties.priority!.default = 'High';
  drifted.properties.priority!.enum = ['Low', 'Normal', 'High'];
  drifted.properties.retryPolicy!.properties.maxRetries!.maximum = 10;
  drifted.properties.language!.pattern = '^[a-z]{2,3}$';
  drifted.properties.audio!.required = [];
  drifted.properties.extra = { type: 'string', required: [], properties: {} };
  const found = differences(drifted, zod, 'spec');
  for (const expected of [
    'spec.priority: default',
    'spec.priority: enum',
    'spec.retryPolicy.maxRetries: maximum',
    'spec.language: pattern',
    'spec.audio: required',
    'spec.extra: only in the CRD',
  ]) {
    assert.ok(found.some((line) => line.startsWith(expected)), `expected a difference starting "${expected}", got:\n${found.join('\n')}`);
  }
});

for (const kind of KINDS) {
  test(`${kind} CRD names, scope, version and subresources match the constants`, () => {
    const crd = loadCrd(kind);
    assert.equal(crd.metadata.name, crdName(kind));
    assert.equal(crd.spec.group, GROUP);
    assert.equal(crd.spec.scope, 'Namespaced');
    assert.deepEqual(crd.spec.names, {
      kind,
      listKind: `${kind}List`,
      plural: PLURALS[kind],
      singular: SINGULARS[kind],
      shortNames: [SHORT_NAMES[kind]],
      categories: [CATEGORY],
    });
    assert.equal(crd.spec.versions.length, 1);
    const version = servedVersion(crd);
    assert.equal(version.served, true);
    assert.equal(version.storage, true);
    // The controller is the only writer of status: the subresource keeps
    // users' writes to the main resource from touching it.
    assert.deepEqual(version.subresources, { status: {} });
  });

  test(`${kind} printer columns point at fields of the schema with the same type`, () => {
    const version = servedVersion(loadCrd(kind));
    const columns = version.additionalPrinterColumns ?? [];
    assert.ok(columns.length > 0);
    for (const column of columns) {
      if (column.jsonPath === '.metadata.creationTimestamp') {
        assert.equal(column.type, 'date');
        continue;
      }
      let node: JsonSchema | undefined = version.schema.openAPIV3Schema;
      for (const segment of column.jsonPath.slice(1).split('.')) {
        node = (node?.properties as Record<string, JsonSchema> | undefined)?.[segment];
      }
      assert.ok(node, `column ${column.name}: ${column.jsonPath} is not in the schema`);
      assert.equal(node.type, column.type, `column ${column.name}: type`);
    }
  });
}

test('task printer columns: Phase, Progress, Attempts, Priority, Age; Worker and Reason only with -o wide', () => {
  for (const kind of ['TranscriptionTask', 'DiarizationTask'] as const) {
    const columns = servedVersion(loadCrd(kind)).additionalPrinterColumns ?? [];
    assert.deepEqual(
      columns.map((c) => [c.name, c.priority ?? 0]),
      [['Phase', 0], ['Progress', 0], ['Attempts', 0], ['Priority', 0], ['Age', 0], ['Worker', 1], ['Reason', 1]],
      kind,
    );
  }
});

test('WorkerPool printer columns: Kind, Target, Min, Max, Backlog, Desired, Replicas, Age', () => {
  const columns = servedVersion(loadCrd('WorkerPool')).additionalPrinterColumns ?? [];
  assert.deepEqual(
    columns.map((c) => c.name),
    ['Kind', 'Target', 'Min', 'Max', 'Backlog', 'Desired', 'Replicas', 'Age'],
  );
  assert.ok(columns.every((c) => (c.priority ?? 0) === 0));
});

test('the CEL rule on audio.uri allows exactly the schemes the zod schema allows', () => {
  for (const kind of ['TranscriptionTask', 'DiarizationTask'] as const) {
    const spec = crdProperty(kind, 'spec') as { properties: { audio: { properties: { uri: JsonSchema } } } };
    const rules = spec.properties.audio.properties.uri['x-kubernetes-validations'] as { rule: string }[];
    assert.equal(rules.length, 1, kind);
    const schemes = [...(rules[0]?.rule ?? '').matchAll(/self\.startsWith\('([^']*)'\)/g)].map((m) => m[1]);
    assert.deepEqual(schemes, [...AUDIO_URI_SCHEMES], kind);
  }
});
