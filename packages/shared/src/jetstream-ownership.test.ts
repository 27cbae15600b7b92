import { describe, expect, it } from 'vitest';
import { bindError, TopologyMissingError } from './jetstream-ownership.js';

/** An error as nats.js gives it for a JetStream API error: the server's err_code as `code`. */
function apiError(message: string, code: number): Error {
  return Object.assign(new Error(message), { code });
}

describe('bindError', () => {
  // The reconciler, the idle reaper and metrics bind to what the watcher declared and show this
  // message in their readiness: it must say what is wrong, not only NATS's words.
  it('says what is not declared yet, and who declares it', () => {
    const error = bindError('the KV bucket B', apiError('stream not found', 10059));
    expect(error).toBeInstanceOf(TopologyMissingError);
    expect(error.message).toMatch(/^the KV bucket B does not exist yet: the watcher declares it/);
  });

  it('says a cluster without quorum is one, as the watcher does', () => {
    const error = bindError('the KV bucket B', apiError('JetStream system temporarily unavailable', 10008));
    expect(error).not.toBeInstanceOf(TopologyMissingError);
    expect(error.message).toMatch(/^the KV bucket B: the NATS cluster has no JetStream quorum .*majority/);
  });

  it("passes anything else on in NATS's words, naming what was asked for", () => {
    expect(bindError('the KV bucket B', new Error('timeout')).message).toBe(
      'cannot read the KV bucket B: timeout',
    );
  });
});
