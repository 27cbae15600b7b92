/**
 * The server pins each work partition to whichever worker's pull it picks, so the first worker
 * up can end up holding every partition while the others stand by. A worker that holds more
 * than its fair share (the partitions divided by the workers, rounded up) gives the excess back:
 * it stops pulling those partitions for a while and asks the server to unpin them, so a
 * standby takes them. Decided on events only (a worker joins, a worker gains a pin), never on a
 * timer.
 */
export function partitionsToRelease(held: readonly number[], members: number, partitions: number): number[] {
  const fairShare = Math.ceil(partitions / Math.max(1, members));
  const excess = held.length - fairShare;
  return excess > 0 ? [...held].sort((a, b) => a - b).slice(-excess) : [];
}
