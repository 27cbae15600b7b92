import { ANNOTATIONS } from '@streamspace/shared';
import { parseSessionSnapshot, type SessionSnapshot } from './session-snapshot.js';

/** Builds Session objects as the API server returns them, for the unit tests. */
export interface SessionShape {
  uid?: string;
  name?: string;
  namespace?: string;
  rv: number;
  generation?: number;
  created?: string;
  template?: string;
  user?: string;
  state?: 'running' | 'hibernated' | 'terminated';
  phase?: string;
  /** [status, reason, lastTransitionTime] of the Ready condition. */
  ready?: [string, string, string];
  changedBy?: string;
  changeReason?: string;
  changedAt?: string;
}

export function rawSession(shape: SessionShape): Record<string, unknown> {
  const annotations: Record<string, string> = {};
  if (shape.changedBy) annotations[ANNOTATIONS.stateChangedBy] = shape.changedBy;
  if (shape.changeReason) annotations[ANNOTATIONS.stateChangeReason] = shape.changeReason;
  if (shape.changedAt) annotations[ANNOTATIONS.stateChangedAt] = shape.changedAt;
  return {
    apiVersion: 'stream.streamspace.io/v1alpha1',
    kind: 'Session',
    metadata: {
      name: shape.name ?? 'desk',
      namespace: shape.namespace ?? 'team',
      uid: shape.uid ?? 'uid-1',
      resourceVersion: String(shape.rv),
      generation: shape.generation ?? 1,
      creationTimestamp: shape.created ?? '2030-01-01T10:00:00Z',
      annotations,
    },
    spec: {
      user: shape.user ?? 'alice@example.com',
      template: shape.template ?? 'firefox',
      state: shape.state ?? 'running',
    },
    ...(shape.phase
      ? {
          status: {
            phase: shape.phase,
            conditions: shape.ready
              ? [
                  {
                    type: 'Ready',
                    status: shape.ready[0],
                    reason: shape.ready[1],
                    message: '',
                    lastTransitionTime: shape.ready[2],
                  },
                ]
              : [],
          },
        }
      : {}),
  };
}

export function snapshot(shape: SessionShape): SessionSnapshot {
  const parsed = parseSessionSnapshot(rawSession(shape));
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.snapshot;
}

/** Milliseconds of a time on 2030-01-01 given as "HH:MM:SS.mmm". */
export function at(time: string): number {
  return Date.parse(`2030-01-01T${time}Z`);
}

export function iso(time: string): string {
  return `2030-01-01T${time}Z`;
}
