import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * The status code a GET of `url` answers with, within `timeoutMs`; rejects when nothing answers.
 *
 * node:http rather than the global fetch: fetch loads undici and compiles its WebAssembly HTTP
 * parser on first use, which raised the metrics service's peak RSS from ~84 MB to ~114 MB
 * (measured with 10,000 Sessions and WATCHER_READY_URL set) — past the chart's 100Mi limit.
 */
export type StatusProbe = (url: string, timeoutMs: number) => Promise<number>;

export const httpStatusProbe: StatusProbe = (url, timeoutMs) =>
  new Promise((resolve, reject) => {
    const request = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, {
      method: 'GET',
      timeout: timeoutMs,
    });
    request.on('response', (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end();
  });
