import { isoTime } from '@streamspace/shared';

/** metav1.Condition, as it appears in our statuses. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/**
 * Orders conditions by type, by UTF-16 code units. Not `localeCompare`: its first call makes V8
 * build an ICU collator, which reads the collation data of every locale from the node binary —
 * 3.0 MiB more resident memory per worker, for types that are ASCII names (node -e with and
 * without one `'a'.localeCompare('b')`: 39.7 against 42.7 MiB). For PascalCase types such as ours
 * (Ready, Reconciled, TemplateResolved) both orders are the same.
 */
export function byType(a: { type: string }, b: { type: string }): number {
  return a.type < b.type ? -1 : a.type > b.type ? 1 : 0;
}

/**
 * Returns `conditions` with `next` in place of the condition of the same type. The transition
 * time only moves when the status changes, so it always says since when something has been true
 * (the startup deadline is measured from it).
 */
export function setCondition(
  conditions: Condition[],
  next: Omit<Condition, 'lastTransitionTime'>,
  now: Date,
): Condition[] {
  const previous = conditions.find((c) => c.type === next.type);
  const lastTransitionTime =
    previous && previous.status === next.status && previous.reason === next.reason
      ? previous.lastTransitionTime
      : isoTime(now);
  return [...conditions.filter((c) => c.type !== next.type), { ...next, lastTransitionTime }].sort(byType);
}

export function findCondition(conditions: Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
