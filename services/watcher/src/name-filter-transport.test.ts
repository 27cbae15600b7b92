import { describe, expect, it } from 'vitest';
import { nameFilterTransport } from './name-filter-transport.js';
import type { WatchTransport } from '@streamspace/kube';

const object = (name: string) => ({ metadata: { name, namespace: 'a' } });

describe('nameFilterTransport', () => {
  const inner: WatchTransport = {
    list: async (_options, onItem) => {
      for (const item of [object('ss-desk'), object('web'), 'junk']) onItem(item);
      return { resourceVersion: '5' };
    },
    watch: async (_rv, _t, onEvent, _onDone, onAnswered) => {
      onAnswered();
      onEvent('ADDED', object('web'));
      onEvent('ADDED', object('ss-desk'));
      onEvent('BOOKMARK', { metadata: { resourceVersion: '9' } });
      onEvent('ERROR', { code: 410 });
      return { abort: () => undefined };
    },
  };

  it('keeps objects of the prefix and whatever names no object, and passes the answer on', async () => {
    const transport = nameFilterTransport(inner, 'ss-');
    const items: unknown[] = [];
    expect(await transport.list({ limit: 10 }, (item) => items.push(item))).toEqual({ resourceVersion: '5' });
    expect(items).toEqual([object('ss-desk'), 'junk']);
    const seen: string[] = [];
    await transport.watch(
      '5',
      60,
      (type, o) => seen.push(`${type} ${JSON.stringify(o)}`),
      () => undefined,
      () => seen.push('answered'),
    );
    expect(seen).toEqual([
      'answered',
      `ADDED ${JSON.stringify(object('ss-desk'))}`,
      'BOOKMARK {"metadata":{"resourceVersion":"9"}}',
      'ERROR {"code":410}',
    ]);
  });
});
