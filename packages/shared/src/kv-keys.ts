import type { Bucket, KV } from '@nats-io/kv';

/**
 * Whether the bucket holds any key under `filter`. A KV watch of an empty range delivers nothing,
 * so nothing would say it is caught up: its callers ask this first and count such a watch as
 * caught up at once. Stops listing at the first key.
 */
export async function hasKeys(kv: KV, filter: string | string[]): Promise<boolean> {
  const keys = await kv.keys(filter);
  for await (const _ of keys) {
    keys.stop();
    return true;
  }
  return false;
}

/**
 * The key and revision of every entry under `filter` (deleted ones left out), read from headers
 * only. For a bucket that keeps one value a key (history 1), its history is its last values; with
 * more, a later revision of a key replaces an earlier one. `KV.history` is typed without
 * `headers_only`, which `Bucket` (what Kvm opens) takes: without it every value would be sent.
 */
export async function entryRevisions(kv: KV, filter: string): Promise<Map<string, number>> {
  const revisions = new Map<string, number>();
  const listing = await (kv as Bucket).history({ key: filter, headers_only: true });
  for await (const entry of listing)
    if (entry.operation === 'PUT') revisions.set(entry.key, entry.revision);
    else revisions.delete(entry.key);
  return revisions;
}
