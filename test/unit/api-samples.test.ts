// The samples are the first thing a new user applies: each must be a valid
// object of our API, and the kustomization must list every one of them.
// (test/integration/crds.test.ts applies them to a real apiserver.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse } from 'yaml';
import { API_VERSION, KINDS, DiarizationTaskSchema, TranscriptionTaskSchema, WorkerPoolSchema } from '../../src/api/index.ts';

const samplesDir = fileURLToPath(new URL('../../config/samples/', import.meta.url));
const sampleFiles = readdirSync(samplesDir)
  .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  .sort();

const schemaFor = {
  TranscriptionTask: TranscriptionTaskSchema,
  DiarizationTask: DiarizationTaskSchema,
  WorkerPool: WorkerPoolSchema,
} as const;

test('there is at least one sample per kind', () => {
  const kinds = new Set(
    sampleFiles.flatMap((f) => parseAllDocuments(readFileSync(samplesDir + f, 'utf8')).map((d) => (d.toJS() as { kind: string }).kind)),
  );
  for (const kind of KINDS) assert.ok(kinds.has(kind), `no sample of ${kind}`);
});

for (const file of sampleFiles) {
  test(`sample ${file} is a valid object of the API`, () => {
    const docs = parseAllDocuments(readFileSync(samplesDir + file, 'utf8'));
    assert.ok(docs.length > 0);
    for (const doc of docs) {
      assert.deepEqual(doc.errors, []);
      const object = doc.toJS() as { apiVersion: string; kind: string; metadata?: { namespace?: string } };
      assert.equal(object.apiVersion, API_VERSION);
      assert.ok(object.kind in schemaFor, `unexpected kind ${object.kind}`);
      // Samples carry no namespace so that `-n` or kustomize can place them.
      assert.equal(object.metadata?.namespace, undefined);
      const result = schemaFor[object.kind as keyof typeof schemaFor].safeParse(object);
      assert.ok(result.success, result.error?.message);
    }
  });
}

test('kustomization.yaml lists every sample', () => {
  const kustomization = parse(readFileSync(samplesDir + 'kustomization.yaml', 'utf8')) as { resources: string[] };
  assert.deepEqual([...kustomization.resources].sort(), sampleFiles);
});
