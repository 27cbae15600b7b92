import { describe, expect, it } from 'vitest';
import { MemberSet } from './session-ownership.js';

const keys = Array.from({ length: 20_000 }, (_, i) => `team-${i % 7}.session-${i}`);
const owners = (set: MemberSet) => new Map(keys.map((k) => [k, set.ownerOf(k)]));
const countBy = (map: Map<string, string>) => {
  const counts = new Map<string, number>();
  for (const owner of map.values()) counts.set(owner, (counts.get(owner) ?? 0) + 1);
  return counts;
};

describe('MemberSet (rendezvous ownership of Sessions)', () => {
  it('a replica alone owns every Session', () => {
    const alone = new MemberSet('a', []);
    expect(keys.every((k) => alone.owns(k))).toBe(true);
    expect(new MemberSet('a', ['a']).members).toEqual(['a']);
  });

  it('each Session has exactly one owner, whichever replica computes it', () => {
    const members = ['reaper-7f9c-1-aa', 'reaper-7f9c-1-bb', 'reaper-x2-1-cc'];
    const views = members.map((self) => new MemberSet(self, [...members].reverse()));
    const notOwnedOnce = keys.filter((key) => views.filter((v) => v.owns(key)).length !== 1);
    const disputed = keys.filter((key) => new Set(views.map((v) => v.ownerOf(key))).size !== 1);
    expect(notOwnedOnce).toEqual([]);
    expect(disputed).toEqual([]);
  });

  it('spreads Sessions evenly over two and over three replicas', () => {
    for (const members of [
      ['idle-reaper-0-1-a1b2c3', 'idle-reaper-1-1-d4e5f6'],
      ['host-a-10-000001', 'host-a-11-000002', 'host-b-10-000003'],
    ]) {
      const counts = countBy(owners(new MemberSet(members[0]!, members)));
      const fair = keys.length / members.length;
      expect([...counts.keys()].sort()).toEqual([...members].sort());
      for (const n of counts.values()) expect(Math.abs(n - fair) / fair).toBeLessThan(0.05);
    }
  });

  it('when a replica leaves only its Sessions move, spread over the others', () => {
    const before = owners(new MemberSet('a', ['a', 'b', 'c']));
    const after = owners(new MemberSet('a', ['a', 'c']));
    let movedFromB = 0;
    const wrong: string[] = [];
    for (const [key, owner] of before) {
      if (owner === 'b') movedFromB++;
      if (owner === 'b' ? after.get(key) === 'b' : after.get(key) !== owner) wrong.push(key);
    }
    expect(wrong).toEqual([]);
    const gained = countBy(new Map([...after].filter(([k]) => before.get(k) === 'b')));
    for (const n of gained.values()) expect(n / movedFromB).toBeGreaterThan(0.4);
  });

  it('a replica that joins takes Sessions only, about 1/n of them', () => {
    const before = owners(new MemberSet('a', ['a', 'b']));
    const after = owners(new MemberSet('a', ['a', 'b', 'c']));
    let taken = 0;
    const moved: string[] = [];
    for (const [key, owner] of after) {
      if (owner === 'c') taken++;
      else if (owner !== before.get(key)) moved.push(key);
    }
    expect(moved).toEqual([]);
    expect(Math.abs(taken / keys.length - 1 / 3)).toBeLessThan(0.02);
  });

  it('names the members that left and joined since a previous set', () => {
    const now = new MemberSet('a', ['a', 'c', 'd']);
    expect(now.leftSince(new MemberSet('a', ['a', 'b', 'c']))).toEqual(['b']);
    expect(now.leftSince(new MemberSet('a', ['a', 'c']))).toEqual([]);
    expect(now.leftSince(undefined)).toEqual([]);
    expect(now.joinedSince(new MemberSet('a', ['a', 'b', 'c']))).toEqual(['d']);
    expect(now.joinedSince(undefined)).toEqual(['a', 'c', 'd']);
  });

  it('compares member lists whatever their order', () => {
    expect(new MemberSet('a', ['b', 'c']).sameMembers(new MemberSet('c', ['b', 'a']))).toBe(true);
    expect(new MemberSet('a', ['b']).sameMembers(new MemberSet('a', ['b', 'c']))).toBe(false);
  });
});
