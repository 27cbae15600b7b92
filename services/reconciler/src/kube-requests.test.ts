import { describe, expect, it } from 'vitest';
import { resourceOf } from './kube-requests.js';

describe('resourceOf', () => {
  it('names the resource a request path addresses', () => {
    expect(resourceOf('/api/v1/namespaces/a/events/s.1')).toBe('events');
    expect(resourceOf('/apis/apps/v1/namespaces/a/deployments/ss-x?fieldManager=streamspace')).toBe(
      'deployments',
    );
    expect(resourceOf('/apis/stream.streamspace.io/v1alpha1/namespaces/a/sessions/x/status')).toBe(
      'sessions',
    );
    expect(resourceOf('/apis/stream.streamspace.io/v1alpha1/sessions')).toBe('sessions');
    expect(resourceOf('/api/v1/pods')).toBe('pods');
  });
});
