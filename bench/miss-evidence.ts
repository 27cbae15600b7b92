import { mkdirSync, writeFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { API_GROUP, API_VERSION, BUCKETS, STREAMS, stateKey, subjects } from '@streamspace/shared';
import type { ServiceProcess } from '../test/integration/harness.js';

/**
 * What a session-pipeline run keeps when a single change never reaches its phase (issue 13: the
 * services' logs were in the bench's memory only and went with it). Where the change stopped is
 * told apart by: the API server's Session against the shared state's entry (the watcher did not
 * see or store it), the Session's item in the work stream (stored and triggered, but not
 * delivered), each work partition's consumer (pending, waiting pulls, pinned client) and each
 * service's counters.
 */

/** Each service's log lines to `<dir>/<service>-<i>.log`: always, so a failed run keeps them too. */
export function writeServiceLogs(dir: string, services: readonly ServiceProcess[]): void {
  mkdirSync(dir, { recursive: true });
  for (const [i, service] of services.entries())
    writeFileSync(
      `${dir}/${service.service}-${i}.log`,
      service.logs.length ? `${service.logs.join('\n')}\n` : '',
    );
}

interface MissedChange {
  name: string;
  namespace: string;
  state: string;
}

/** The state at the moment of a miss, to `<dir>/<namespace>-<name>-<state>/`: evidence.json and each service's /metrics. */
export async function recordMiss(
  dir: string,
  change: MissedChange,
  context: { natsUrl: string; kc: k8s.KubeConfig; services: readonly ServiceProcess[] },
): Promise<string> {
  const { name, namespace } = change;
  const out = `${dir}/${namespace}-${name}-${change.state}`;
  mkdirSync(out, { recursive: true });
  const evidence: Record<string, unknown> = { ...change, at: new Date().toISOString() };
  const attempt = async (key: string, read: () => Promise<unknown>) => {
    try {
      evidence[key] = await read();
    } catch (error) {
      evidence[key] = { error: (error as Error).message };
    }
  };
  const versions = (object: unknown) => {
    const { metadata, spec, status } = (object ?? {}) as {
      metadata?: { resourceVersion?: string; generation?: number };
      spec?: { state?: string };
      status?: { phase?: string; observedGeneration?: number };
    };
    return {
      resourceVersion: metadata?.resourceVersion,
      generation: metadata?.generation,
      specState: spec?.state,
      phase: status?.phase,
      observedGeneration: status?.observedGeneration,
    };
  };
  await attempt('apiServer', async () =>
    versions(
      await context.kc.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace,
        plural: 'sessions',
        name,
      }),
    ),
  );
  const nc = await connect({ servers: context.natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    await attempt('sharedState', async () => {
      const entry = await (await new Kvm(nc).open(BUCKETS.state)).get(stateKey('session', namespace, name));
      return entry ? { revision: entry.revision, ...versions(entry.json()) } : null;
    });
    await attempt('workItem', async () => {
      const message = await jsm.streams.getMessage(STREAMS.work, {
        last_by_subj: subjects.work('session', namespace, name),
      });
      return message
        ? { seq: message.seq, subject: message.subject, time: message.time, body: message.string() }
        : null;
    });
    await attempt('workConsumers', async () => {
      const consumers = [];
      for await (const info of jsm.consumers.list(STREAMS.work))
        consumers.push({
          name: info.name,
          numPending: info.num_pending,
          numAckPending: info.num_ack_pending,
          numWaiting: info.num_waiting,
          numRedelivered: info.num_redelivered,
          delivered: info.delivered,
          ackFloor: info.ack_floor,
          // The pinned client of the priority group (nats-server 2.11+ sends it; nats.js does not type it).
          priorityGroups: (info as { priority_groups?: unknown }).priority_groups,
        });
      return consumers;
    });
  } finally {
    await nc.close();
  }
  await Promise.all(
    context.services.map(async (service, i) => {
      try {
        writeFileSync(`${out}/${service.service}-${i}.metrics`, (await service.get('/metrics')).body);
      } catch (error) {
        writeFileSync(
          `${out}/${service.service}-${i}.metrics`,
          `# could not read: ${(error as Error).message}\n`,
        );
      }
    }),
  );
  writeFileSync(`${out}/evidence.json`, `${JSON.stringify(evidence, null, 2)}\n`);
  return out;
}
