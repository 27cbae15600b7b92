import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { declareTopology, STREAMS, subjects } from '@streamspace/shared';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type PrivateNats, startPrivateNats } from './private-nats.js';

/**
 * Issue 12, bounded by construction: the commands stream keeps at most one pending command per
 * Session (and issuer), the newest, however many are published while no executor takes them, and
 * refuses a command larger than its max_msg_size. On a real nats-server, with the topology the
 * watcher declares and no executor running.
 */

let nats: PrivateNats;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startPrivateNats();
  nc = await connect({ servers: nats.url });
  await declareTopology(nc, { activityTtlMs: 3_600_000 });
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

it('keeps one pending command per Session and issuer, the newest, and refuses oversized ones', async () => {
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const command = (name: string, round: number) =>
    JSON.stringify({ action: round % 2 ? 'terminate' : 'hibernate', namespace: 'team-a', name, round });
  // A stuck executor: 50 decisions for each of three Sessions pile up.
  for (let round = 0; round < 50; round++)
    for (const name of ['a', 'b', 'c'])
      await js.publish(subjects.command('idle-reaper', 'team-a', name), command(name, round));
  const info = await jsm.streams.info(STREAMS.commands, { subjects_filter: subjects.commandsAll });
  expect(info.state.messages).toBe(3);
  expect(info.state.subjects).toEqual({
    [subjects.command('idle-reaper', 'team-a', 'a')]: 1,
    [subjects.command('idle-reaper', 'team-a', 'b')]: 1,
    [subjects.command('idle-reaper', 'team-a', 'c')]: 1,
  });
  const kept = await jsm.streams.getMessage(STREAMS.commands, {
    last_by_subj: subjects.command('idle-reaper', 'team-a', 'b'),
  });
  expect(kept?.json<{ round: number }>().round).toBe(49);
  expect(info.config).toMatchObject({
    max_msgs_per_subject: 1,
    max_msg_size: 8192,
    max_bytes: 64 * 1024 * 1024,
  });

  const huge = JSON.stringify({ message: 'x'.repeat(9 * 1024) });
  const refused = await js.publish(subjects.command('idle-reaper', 'team-a', 'd'), huge).then(
    () => 'stored',
    (error: Error) => error.message,
  );
  expect(refused).toMatch(/message size exceeds maximum/i);
  expect((await jsm.streams.info(STREAMS.commands)).state.messages).toBe(3);
  console.log(`commands stream: 150 commands for 3 sessions kept as 3; a 9 KiB command refused (${refused})`);
});
