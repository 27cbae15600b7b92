import { createHash } from 'node:crypto';
import { isoTime } from '@streamspace/shared';
import type { KubeClient } from './kube-client.js';
import { isConflict, isNotFound } from './kube-error.js';

/** The object an Event is about. */
export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string;
  resourceVersion?: string;
}

export type EventType = 'Normal' | 'Warning';

export interface EventRecorderOptions {
  /** source.component and reportingComponent, e.g. streamspace-reconciler. */
  component: string;
  /** reportingInstance: which replica. */
  instance: string;
  /** How many distinct Events are remembered for aggregation (least recently used go first). */
  maxRemembered?: number;
  now?: () => Date;
}

interface Remembered {
  name: string;
  count: number;
}

const EVENTS = { version: 'v1', plural: 'events' } as const;
const MAX_MESSAGE = 1024;

/**
 * core/v1 Events, aggregated as client-go's recorder does (tools/record/events_cache.go): the
 * same involved object, type, reason and message again raises `count` and `lastTimestamp` of the
 * Event already written instead of creating one more object per occurrence, so a reconcile that
 * keeps failing the same way leaves one Event that says "x 40 over 20m", not forty.
 *
 * The Event's name is derived from that key, so a restarted process or another replica that
 * reports the same thing finds the existing Event (409 on create), reads its count once and
 * goes on counting, rather than adding a twin.
 */
export class EventRecorder {
  private readonly remembered = new Map<string, Remembered>();
  /** One write at a time per key: two occurrences at once must count two, not race to one. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly maxRemembered: number;
  private readonly now: () => Date;

  constructor(
    private readonly kube: KubeClient,
    private readonly options: EventRecorderOptions,
  ) {
    this.maxRemembered = options.maxRemembered ?? 4096;
    this.now = options.now ?? (() => new Date());
  }

  record(object: InvolvedObject, type: EventType, reason: string, message: string): Promise<void> {
    const text = message.slice(0, MAX_MESSAGE);
    const key = [
      object.apiVersion,
      object.kind,
      object.namespace,
      object.name,
      object.uid ?? '',
      type,
      reason,
      text,
    ].join('\u0000');
    const previous = this.inFlight.get(key) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(() => this.write(key, object, type, reason, text));
    const tracked = next.finally(() => {
      if (this.inFlight.get(key) === tracked) this.inFlight.delete(key);
    });
    this.inFlight.set(key, tracked);
    return next;
  }

  private remember(key: string, entry: Remembered): void {
    this.remembered.delete(key);
    this.remembered.set(key, entry);
    if (this.remembered.size > this.maxRemembered) {
      const oldest = this.remembered.keys().next().value;
      if (oldest !== undefined) this.remembered.delete(oldest);
    }
  }

  private async write(
    key: string,
    object: InvolvedObject,
    type: EventType,
    reason: string,
    message: string,
  ): Promise<void> {
    const now = isoTime(this.now());
    const ref = { ...EVENTS, namespace: object.namespace };
    const known = this.remembered.get(key);
    if (known) {
      try {
        await this.kube.mergePatch(
          { ...ref, name: known.name },
          { count: known.count + 1, lastTimestamp: now },
        );
        this.remember(key, { name: known.name, count: known.count + 1 });
        return;
      } catch (error) {
        // Events expire (the API server's --event-ttl, an hour by default): start a new one.
        if (!isNotFound(error)) throw error;
      }
    }
    // An object name may use all 253 characters an Event name may have: the hash keeps it apart.
    const name = `${object.name.slice(0, 236).replace(/[.-]+$/, '')}.${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
    try {
      await this.kube.create(ref, this.body(name, object, type, reason, message, now));
      this.remember(key, { name, count: 1 });
    } catch (error) {
      if (!isConflict(error)) throw error;
      // Written before by a replica or an earlier run of this one: continue its count.
      const existing = await this.kube.get<{ count?: number }>({ ...ref, name });
      const count = (existing.count ?? 1) + 1;
      await this.kube.mergePatch({ ...ref, name }, { count, lastTimestamp: now });
      this.remember(key, { name, count });
    }
  }

  private body(
    name: string,
    object: InvolvedObject,
    type: EventType,
    reason: string,
    message: string,
    now: string,
  ) {
    const { component, instance } = this.options;
    return {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace: object.namespace },
      involvedObject: {
        apiVersion: object.apiVersion,
        kind: object.kind,
        name: object.name,
        namespace: object.namespace,
        ...(object.uid ? { uid: object.uid } : {}),
        ...(object.resourceVersion ? { resourceVersion: object.resourceVersion } : {}),
      },
      type,
      reason,
      message,
      source: { component },
      reportingComponent: component,
      reportingInstance: instance,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
  }
}
