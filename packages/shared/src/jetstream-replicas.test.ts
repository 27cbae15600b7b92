import { describe, expect, it } from 'vitest';
import {
  chooseReplicas,
  explainNoQuorum,
  explainReplicasError,
  ReplicasRefusedError,
  replicasSettingSchema,
} from './jetstream-replicas.js';

/** An error as nats.js gives it for a JetStream API error: the server's err_code as `code`. */
function apiError(message: string, code: number): Error {
  return Object.assign(new Error(message), { code });
}

describe('NATS_REPLICAS', () => {
  it("reads 'auto' (the default) or a count from 1 to 5, and refuses anything else", () => {
    expect(replicasSettingSchema.parse(undefined)).toBe('auto');
    expect(replicasSettingSchema.parse('auto')).toBe('auto');
    expect(replicasSettingSchema.parse('3')).toBe(3);
    for (const bad of ['0', '6', '2.5', 'three', '-1'])
      expect(replicasSettingSchema.safeParse(bad).success, bad).toBe(false);
  });

  it('chooses 3 on a cluster and 1 on a single server when auto, else the count given', () => {
    expect(chooseReplicas('auto', { cluster: 'nats' }).replicas).toBe(3);
    expect(chooseReplicas('auto', {}).replicas).toBe(1);
    expect(chooseReplicas('auto', undefined).replicas).toBe(1);
    expect(chooseReplicas(1, { cluster: 'nats' })).toEqual({ replicas: 1, reason: 'NATS_REPLICAS=1' });
    expect(chooseReplicas('auto', { cluster: 'nats' }).reason).toMatch(/cluster nats/);
  });
});

describe('explainReplicasError', () => {
  it('names the setting and what to change when NATS refuses the count', () => {
    const single = explainReplicasError(
      apiError('replicas > 1 not supported in non-clustered mode', 10074),
      'the stream X',
      3,
    );
    expect(single).toBeInstanceOf(ReplicasRefusedError);
    expect(single.message).toMatch(/the stream X.*NATS_REPLICAS=1.*nats\.replicas: 1/);
    for (const [text, code] of [
      ['insufficient resources', 10023],
      ['no suitable peers for placement', 10005],
    ] as const) {
      const error = explainReplicasError(apiError(text, code), 'the stream X', 5);
      expect(error, text).toBeInstanceOf(ReplicasRefusedError);
      expect(error.message).toMatch(/cannot place 5 copies.*at least 5 JetStream servers.*NATS_REPLICAS/);
    }
    const fixed = explainReplicasError(
      apiError('replicas configuration can not be updated', 10061),
      'the stream X',
      3,
    );
    expect(fixed).toBeInstanceOf(ReplicasRefusedError);
    expect(fixed.message).toMatch(/another replica count.*NATS_REPLICAS/);
  });

  it('says a cluster without quorum is waited for (a transient error), and leaves other errors alone', () => {
    const quorum = explainReplicasError(
      apiError('JetStream system temporarily unavailable', 10008),
      'the stream X',
      3,
    );
    expect(quorum).not.toBeInstanceOf(ReplicasRefusedError);
    expect(quorum.message).toMatch(/no JetStream quorum.*majority/);
    const other = new Error('timeout');
    expect(explainReplicasError(other, 'the stream X', 3)).toBe(other);
  });
});

describe('explainNoQuorum', () => {
  it('says a cluster without quorum is one, by its code or its text, naming what was asked for', () => {
    for (const error of [
      apiError('JetStream system temporarily unavailable', 10008),
      new Error('JetStream system temporarily unavailable'),
    ]) {
      const explained = explainNoQuorum(error, 'the KV bucket B');
      expect(explained?.message).toMatch(
        /^the KV bucket B: the NATS cluster has no JetStream quorum \(JetStream system temporarily unavailable\); waiting for a majority/,
      );
    }
  });

  it('gives nothing for any other error', () => {
    expect(explainNoQuorum(new Error('timeout'), 'the KV bucket B')).toBeUndefined();
    expect(explainNoQuorum(apiError('stream not found', 10059), 'the KV bucket B')).toBeUndefined();
  });
});
