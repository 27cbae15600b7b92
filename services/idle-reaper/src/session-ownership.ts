import { fnv1a32 } from '@streamspace/shared';

/**
 * Which reaper replica owns which Session: rendezvous (highest random weight) hashing of the
 * session key over the live members. Every replica computes the same owner from the same member
 * list, with no coordination beyond agreeing on who is alive; when a member leaves, only its own
 * Sessions move (each to the member that scores next best for it), and when one joins it takes
 * about 1/n of the Sessions from each of the others, nothing else moves.
 */

/** murmur3's 32-bit finalizer: a bijection that spreads every input bit over the whole word. */
function mix(h: number): number {
  let x = h >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** A member's weight for one key (the key hashed once, then combined with each member's seed). */
function score(keyHash: number, memberSeed: number): number {
  return mix((keyHash ^ memberSeed) + 0x9e3779b9);
}

export class MemberSet {
  /** Sorted and unique, so two replicas seeing the same members in another order agree. */
  readonly members: readonly string[];
  private readonly seeds: number[];

  /** `self` is always a member: a replica that cannot see itself still owns its part (see docs). */
  constructor(
    readonly self: string,
    members: Iterable<string>,
  ) {
    this.members = [...new Set([...members, self])].sort();
    this.seeds = this.members.map((m) => mix(fnv1a32(m)));
  }

  get size(): number {
    return this.members.length;
  }

  /** The member that owns `key`. */
  ownerOf(key: string): string {
    if (this.members.length === 1) return this.members[0]!;
    const keyHash = fnv1a32(key);
    let best = 0;
    let bestScore = -1;
    for (let i = 0; i < this.seeds.length; i++) {
      const s = score(keyHash, this.seeds[i]!);
      // Ties (one in 2^32) go to the first in sorted order, the same on every replica.
      if (s > bestScore) {
        best = i;
        bestScore = s;
      }
    }
    return this.members[best]!;
  }

  owns(key: string): boolean {
    return this.members.length === 1 || this.ownerOf(key) === this.self;
  }

  /** The members of `previous` that are not members any more (none when there was no previous set). */
  leftSince(previous: MemberSet | undefined): string[] {
    if (!previous) return [];
    return previous.members.filter((m) => !this.members.includes(m));
  }

  /** The members that were not in `previous` (every member when there was no previous set). */
  joinedSince(previous: MemberSet | undefined): string[] {
    if (!previous) return [...this.members];
    return previous.leftSince(this);
  }

  sameMembers(other: MemberSet): boolean {
    return (
      this.members.length === other.members.length && this.members.every((m, i) => m === other.members[i])
    );
  }
}
