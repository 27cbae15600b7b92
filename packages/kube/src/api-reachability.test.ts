import { describe, expect, it } from 'vitest';
import { followApiReachability } from './api-reachability.js';

describe('followApiReachability', () => {
  it('reports each answer and each failure, and stops when aborted', async () => {
    const answers = [undefined, new Error('connect ECONNREFUSED'), undefined];
    const reports: [boolean, string][] = [];
    const controller = new AbortController();
    const kube = {
      request: async () => {
        const next = answers.shift();
        if (answers.length === 0) controller.abort();
        if (next) throw next;
        return {};
      },
    };
    await followApiReachability(
      kube as never,
      (up, reason) => reports.push([up, reason]),
      controller.signal,
      1,
    );
    expect(reports).toEqual([
      [true, 'ok'],
      [false, 'API server unreachable: connect ECONNREFUSED'],
      [true, 'ok'],
    ]);
  });
});
