import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { z } from 'zod';

/**
 * How many copies JetStream keeps of every stream, consumer and KV bucket the platform declares.
 * On a NATS cluster three copies let the control plane lose any one server and nothing with it;
 * a single server can hold only one. The watcher declares the topology, so this is its setting.
 */

/** The variable that sets it, named in every error about it. */
export const REPLICAS_SETTING = 'NATS_REPLICAS';

/** The most JetStream allows. */
export const MAX_REPLICAS = 5;

/** The copies asked for on a cluster when NATS_REPLICAS is `auto`. */
export const CLUSTER_REPLICAS = 3;

export type ReplicasSetting = 'auto' | number;

/** NATS_REPLICAS: `auto` (3 when the server is part of a cluster, else 1) or a count from 1 to 5. */
export const replicasSettingSchema = z
  .string()
  .default('auto')
  .transform((text, ctx): ReplicasSetting => {
    if (text === 'auto') return 'auto';
    const count = Number(text);
    if (Number.isInteger(count) && count >= 1 && count <= MAX_REPLICAS) return count;
    ctx.addIssue({ code: 'custom', message: `must be 'auto' or a whole number from 1 to ${MAX_REPLICAS}` });
    return z.NEVER;
  });

/** What was chosen, and why, for the log line that says so. */
export interface ReplicasChoice {
  replicas: number;
  reason: string;
}

/**
 * The replica count to declare. `cluster` is the cluster name the server gave in its INFO (set
 * only when it runs with routes to others): the one fact a client learns without a system account.
 */
export function chooseReplicas(
  setting: ReplicasSetting,
  server: { cluster?: string | undefined } | undefined,
): ReplicasChoice {
  if (setting !== 'auto') return { replicas: setting, reason: `${REPLICAS_SETTING}=${setting}` };
  if (server?.cluster)
    return {
      replicas: CLUSTER_REPLICAS,
      reason: `${REPLICAS_SETTING}=auto and the server is part of cluster ${server.cluster}`,
    };
  return { replicas: 1, reason: `${REPLICAS_SETTING}=auto and the server is not part of a cluster` };
}

/** Thrown when NATS cannot give a stream the copies asked for: retrying alone cannot fix it. */
export class ReplicasRefusedError extends Error {
  override name = 'ReplicasRefusedError';
}

/** nats-server's error codes (server/errors.json) for what the replica count can run into. */
const NOT_CLUSTERED = 10074;
const INSUFFICIENT_RESOURCES = 10023;
const NO_SUITABLE_PEERS = 10005;
const REPLICAS_NOT_UPDATABLE = 10061;
const CLUSTER_UNAVAILABLE = 10008;

function apiCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

/**
 * Says what an error from declaring `what` with `replicas` copies means for the operator, naming
 * the setting and what to change; errors that have nothing to do with replicas come back as they
 * were. A refused count becomes a ReplicasRefusedError; a cluster without quorum stays a plain
 * (transient) error with a message saying so, since it heals when the servers come back.
 */
export function explainReplicasError(error: unknown, what: string, replicas: number): Error {
  const err = error instanceof Error ? error : new Error(String(error));
  const code = apiCode(err);
  const text = err.message;
  if (code === NOT_CLUSTERED || /not supported in non-clustered mode/i.test(text))
    return new ReplicasRefusedError(
      `${what}: the NATS server is not part of a cluster and cannot keep ${replicas} copies (${text}). Set ${REPLICAS_SETTING}=1 (chart: nats.replicas: 1), or run NATS as a cluster of at least ${replicas} servers`,
    );
  if (
    code === INSUFFICIENT_RESOURCES ||
    code === NO_SUITABLE_PEERS ||
    /insufficient resources|no suitable peers/i.test(text)
  )
    return new ReplicasRefusedError(
      `${what}: NATS cannot place ${replicas} copies (${text}): the cluster has fewer than ${replicas} JetStream servers up with room for it. Run at least ${replicas} JetStream servers, or lower ${REPLICAS_SETTING} (chart: nats.replicas)`,
    );
  if (code === REPLICAS_NOT_UPDATABLE || /replicas configuration can not be updated/i.test(text))
    return new ReplicasRefusedError(
      `${what} exists with another replica count and NATS will not change it (${text}). Set ${REPLICAS_SETTING} to the count it has, or move its data and delete it so it is created with ${replicas}`,
    );
  return explainNoQuorum(err, what) ?? err;
}

/**
 * The explanation of an error from a JetStream request about `what` when it means the cluster has
 * no JetStream quorum (NATS says only "JetStream system temporarily unavailable"), else undefined.
 * A plain (transient) error: it heals when a majority of the servers is back. Every service says
 * it this way where it declares or binds to streams, consumers and buckets.
 */
export function explainNoQuorum(error: unknown, what: string): NoQuorumError | undefined {
  if (error instanceof NoQuorumError) return error;
  const text = error instanceof Error ? error.message : String(error);
  if (
    apiCode(error) !== CLUSTER_UNAVAILABLE &&
    !/temporarily unavailable|no quorum|cluster not available/i.test(text)
  )
    return undefined;
  return new NoQuorumError(
    `${what}: the NATS cluster has no JetStream quorum (${text}); waiting for a majority of its servers to be up`,
  );
}

/** A cluster without JetStream quorum, said as such (explainNoQuorum): transient, it heals. */
export class NoQuorumError extends Error {
  override readonly name = 'NoQuorumError';
}

/**
 * The JetStream API, for work on `what`. Its first request (account info) is the first to meet a
 * cluster without quorum, which NATS calls only "JetStream system temporarily unavailable": that
 * is said as what it is (a NoQuorumError); any other error comes back as NATS gave it. The one way
 * every service makes its manager where quorum may be missing.
 */
export async function jetstreamManagerFor(nc: NatsConnection, what: string): Promise<JetStreamManager> {
  try {
    return await jetstreamManager(nc);
  } catch (error) {
    throw explainNoQuorum(error, what) ?? error;
  }
}
