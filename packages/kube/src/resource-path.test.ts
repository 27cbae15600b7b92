import { describe, expect, it } from 'vitest';
import { requestTarget, resourcePath } from './resource-path.js';

describe('a request target', () => {
  it('is the path with each defined query parameter encoded', () => {
    const path = resourcePath({
      group: 'apps',
      version: 'v1',
      plural: 'deployments',
      namespace: 'a b',
      name: 'x',
    });
    expect(
      requestTarget(path, { fieldManager: 'streamspace', force: true, limit: 500, continue: undefined }),
    ).toBe('/apis/apps/v1/namespaces/a%20b/deployments/x?fieldManager=streamspace&force=true&limit=500');
    expect(requestTarget('/api/v1/pods', { labelSelector: 'app in (a,b),tier=web&x' })).toBe(
      '/api/v1/pods?labelSelector=app%20in%20(a%2Cb)%2Ctier%3Dweb%26x',
    );
  });

  it('is the path alone without parameters, and adds to a query the path has', () => {
    expect(requestTarget('/version')).toBe('/version');
    expect(requestTarget('/api/v1/pods', { continue: undefined })).toBe('/api/v1/pods');
    expect(requestTarget('/api/v1/pods?watch=true', { resourceVersion: '5' })).toBe(
      '/api/v1/pods?watch=true&resourceVersion=5',
    );
  });
});
