// Where the watcher's memory goes: the heap its informer caches take for N Sessions and their
// five children (Deployment, Pod, Service, Ingress, NetworkPolicy), built with the real code
// (pnpm run build first) from objects a 1,000-Session bench run held (watcher-cache-samples/).
//
//   node --expose-gc bench/watcher-cache-memory.mjs <sessions> <whole|digest|packed> [kinds,...]
//
// whole: every kind cached as its trimmed JSON (the watcher before child-entry.ts);
// digest: Sessions whole, children as ChildEntry (child-entry.ts);
// packed: children as ChildEntry, Sessions packed (packed-session.ts), as the watcher caches them
// (with SHARED_NAME_KINDS sharing their name strings where the build has it).
import { readFileSync } from 'node:fs';

const repo = new URL('..', import.meta.url).pathname;
const { ObjectCache, parseKubeObject, forgetParsed } = await import(`${repo}packages/kube/dist/index.js`);
const { trimObject, LABELS } = await import(`${repo}packages/shared/dist/index.js`);
const { childRetention, SHARED_NAME_KINDS } = await import(`${repo}services/watcher/dist/child-entry.js`);
const { PACKED_SESSIONS } = await import(`${repo}services/watcher/dist/packed-session.js`);

const sessions = Number(process.argv[2] ?? 1000);
const mode = process.argv[3] ?? 'digest';
const only = process.argv[4]?.split(',');
const KINDS = {
  session: 'Session',
  deployment: 'Deployment',
  pod: 'Pod',
  service: 'Service',
  ingress: 'Ingress',
  networkpolicy: 'NetworkPolicy',
};
const kinds = Object.keys(KINDS).filter((kind) => !only || only.includes(kind));
const samples = Object.fromEntries(
  kinds.map((kind) => [kind, readFileSync(`${repo}bench/watcher-cache-samples/${kind}.json`, 'utf8')]),
);
/** The Session a sample belongs to: its own name, or its session label. */
const owner = (text) => {
  const object = JSON.parse(text);
  return object.kind === 'Session' ? object.metadata.name : object.metadata.labels[LABELS.session];
};
/** packed: as the watcher does, a child takes the name string another kind's entry holds (SHARED_NAME_KINDS). */
const sharedNames = (kind) =>
  mode === 'packed' && SHARED_NAME_KINDS?.includes(kind)
    ? (namespace, name) => {
        for (const other of SHARED_NAME_KINDS)
          if (other !== kind && caches[other]) {
            const entry = caches[other].get(namespace, name);
            if (entry) return entry.name;
          }
        return undefined;
      }
    : undefined;
const caches = Object.fromEntries(
  kinds.map((kind) => [
    kind,
    mode !== 'whole' && kind !== 'session'
      ? new ObjectCache(
          childRetention(kind, { apiVersion: 'v1', objectKind: KINDS[kind] }, sharedNames(kind)),
        )
      : mode === 'packed'
        ? new ObjectCache(PACKED_SESSIONS)
        : new ObjectCache(),
  ]),
);

globalThis.gc();
const before = process.memoryUsage().heapUsed;
let jsonBytes = 0;
for (let i = 0; i < sessions; i++)
  for (const kind of kinds) {
    // Each object with its own names, uid and resourceVersion, as in a cluster.
    const session = owner(samples[kind]);
    const text = samples[kind]
      .replaceAll(`ss-${session}`, `ss-bench-${i}`)
      .replaceAll(`"${session}"`, `"bench-${i}"`)
      .replace(/"uid":"[^"]+"/, `"uid":"${crypto.randomUUID()}"`)
      .replace(/"resourceVersion":"\d+"/, `"resourceVersion":"${1_000_000 + i}"`);
    const parsed = parseKubeObject(JSON.parse(text), (raw) => trimObject(kind, raw));
    if (!parsed.ok) throw new Error(parsed.reason);
    jsonBytes += parsed.object.bytes;
    caches[kind].upsert(parsed.object);
    // What the informer does once a change is handed on.
    forgetParsed(parsed.object);
  }
globalThis.gc();
const after = process.memoryUsage().heapUsed;
console.log(
  JSON.stringify({
    sessions,
    mode,
    kinds,
    cacheHeapMiB: Number(((after - before) / 2 ** 20).toFixed(1)),
    trimmedJsonMiB: Number((jsonBytes / 2 ** 20).toFixed(1)),
    held: Object.fromEntries(kinds.map((kind) => [kind, caches[kind].size])),
  }),
);
