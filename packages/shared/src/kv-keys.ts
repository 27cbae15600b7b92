import type { KV } from '@nats-io/kv';

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
