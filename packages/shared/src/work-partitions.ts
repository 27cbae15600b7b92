/**
 * Work items are spread over a fixed number of partitions by a stable hash of their key. Each
 * partition is one durable consumer whose priority group pins it to one reconciler at a time
 * (nats-server ≥ 2.11, ADR-42 `pinned_client`), so every item of one key reaches the same worker,
 * and that worker alone, for as long as it holds the pin. The number of partitions is the
 * watcher's setting (WORK_PARTITIONS); it records it on the work stream (metadata) for the
 * reconcilers and the metrics service to read.
 */

/**
 * 12 divides among 1, 2, 3, 4 and 6 workers alike. With 8, three workers held 3, 3 and 2: in the
 * 1,000-Session bench the two with three partitions did 3/8 of the reconciles each (2,328 and
 * 2,331 against 1,541), and a burst of creates lasted as long as their share took.
 */
export const DEFAULT_WORK_PARTITIONS = 12;
/** More partitions than this only add consumers and pull traffic (a partition is the unit of failover, not of concurrency). */
export const MAX_WORK_PARTITIONS = 64;
/** The priority group every reconciler pulls each partition consumer under. */
export const WORK_PRIORITY_GROUP = 'reconcilers';
/** The work stream's metadata entry that holds the number of partitions. */
export const WORK_PARTITIONS_METADATA = 'streamspace.io/work-partitions';
/** How long a partition stays pinned to a worker that stopped pulling (the consumers' priority_timeout). */
export const DEFAULT_PIN_TIMEOUT_MS = 5_000;

/**
 * FNV-1a (32 bit) of the key, modulo the number of partitions: stable across processes, releases
 * and platforms (never `Math.random`, never a per-process seed), so the watcher and every worker
 * agree on where a key lives.
 */
export function partitionOf(key: string, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new Error(`the number of work partitions must be a positive integer, not ${partitions}`);
  return fnv1a32(key) % partitions;
}

const utf8 = new TextEncoder();

/**
 * FNV-1a (32 bit) of the key's UTF-8 bytes: the stable hash every service agrees on. Kubernetes
 * names are ASCII, whose characters are their bytes, so the common case hashes without encoding
 * (the idle reaper hashes a key per activity report).
 */
export function fnv1a32(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i);
    if (code >= 0x80) return fnv1a32Bytes(utf8.encode(key));
    hash ^= code;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

function fnv1a32Bytes(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const byte of bytes) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** The durable consumer of one partition. */
export function workConsumerName(partition: number): string {
  return `reconciler-p${partition}`;
}

/** Every partition consumer's name, for the given number of partitions. */
export function workConsumerNames(partitions: number): string[] {
  return Array.from({ length: partitions }, (_, p) => workConsumerName(p));
}

/**
 * The number of partitions a work stream records; undefined when it records none or nonsense
 * (a stream declared by a release before partitions: the caller waits for the watcher).
 */
export function recordedPartitions(metadata: Record<string, string> | undefined): number | undefined {
  const value = Number(metadata?.[WORK_PARTITIONS_METADATA]);
  return Number.isInteger(value) && value >= 1 && value <= MAX_WORK_PARTITIONS ? value : undefined;
}
