import { describe, expect, it } from 'vitest';
import { byType, setCondition } from './conditions.js';

describe('conditions', () => {
  it('orders by type in UTF-16 code units, not by locale (uppercase before lowercase)', () => {
    const types = ['TemplateResolved', 'b', 'Reconciled', 'Ready', 'B'].map((type) => ({ type }));
    expect(types.sort(byType).map((c) => c.type)).toEqual(['B', 'Ready', 'Reconciled', 'TemplateResolved', 'b']);
    expect(byType({ type: 'Ready' }, { type: 'Ready' })).toBe(0);
  });

  it('keeps the conditions ordered by type when one is set', () => {
    const now = new Date('2026-11-30T16:00:00Z');
    const conditions = setCondition(
      [{ type: 'TemplateResolved', status: 'True', reason: 'TemplateFound', message: '', lastTransitionTime: '' }],
      { type: 'Ready', status: 'False', reason: 'Pending', message: '' },
      now,
    );
    expect(conditions.map((c) => c.type)).toEqual(['Ready', 'TemplateResolved']);
    expect(conditions[0]?.lastTransitionTime).toBe(now.toISOString());
  });
});
