import { DiscardPolicy } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { streamConfigs } from './jetstream-topology.js';
import { STREAMS } from './subjects.js';

describe('the commands stream', () => {
  it('keeps one pending command per subject (issuer and Session), newest wins, and is bounded', () => {
    const commands = streamConfigs().find((s) => s.name === STREAMS.commands);
    expect(commands).toMatchObject({
      max_msgs_per_subject: 1,
      discard: DiscardPolicy.Old,
      max_msg_size: 8 * 1024,
      max_bytes: 64 * 1024 * 1024,
    });
  });
});
