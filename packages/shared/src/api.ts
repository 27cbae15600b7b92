/**
 * The StreamSpace API (stream.streamspace.io/v1alpha1) for TypeScript: the Session and Template
 * schemas and types, the duration format, and object naming. The zod/CRD agreement corpus is
 * test support (api-corpus.test-support.ts), not part of what services load.
 * The CRDs in crds/ are the same contract for the API server; docs/api.md describes both.
 */
export * from './api-common.js';
export * from './duration.js';
export * from './object-names.js';
export * from './session-schema.js';
export * from './template-schema.js';
