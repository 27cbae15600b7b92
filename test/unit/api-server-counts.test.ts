import { describe, expect, it } from 'vitest';
import { nonWatchRequests, readCounts, subtract, sum, watchCounts } from '../../bench/api-server-counts.js';

// Lines as kube-apiserver v1.36 serves them on /metrics (labels trimmed to those that matter).
const scrape = `
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",group="apps",resource="deployments",scope="namespace",subresource="",verb="LIST",version="v1"} 3
apiserver_request_total{code="200",group="apps",resource="deployments",scope="resource",subresource="",verb="GET",version="v1"} 5
apiserver_request_total{code="404",group="apps",resource="deployments",scope="resource",subresource="",verb="GET",version="v1"} 2
apiserver_request_total{code="200",group="streamspace.io",resource="sessions",scope="resource",subresource="status",verb="GET",version="v1alpha1"} 1
apiserver_request_total{code="200",group="streamspace.io",resource="sessions",scope="resource",subresource="",verb="APPLY",version="v1alpha1"} 40
apiserver_request_total{code="200",group="",resource="configmaps",scope="resource",subresource="",verb="GET",version="v1"} 7
apiserver_request_total{code="0",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 4
# TYPE apiserver_longrunning_requests gauge
apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 4
apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 1
apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="resource",subresource="log",verb="CONNECT",version="v1"} 2
apiserver_longrunning_requests{component="apiserver",group="",resource="secrets",scope="cluster",subresource="",verb="WATCH",version="v1"} 2
`;

describe('API server counts', () => {
  it('counts GET and LIST of the platform resources, whatever their code or subresource', () => {
    expect(readCounts(scrape)).toEqual({ 'LIST deployments': 3, 'GET deployments': 7, 'GET sessions': 1 });
  });

  it('counts every request but watches', () => {
    expect(nonWatchRequests(scrape)).toBe(3 + 5 + 2 + 1 + 40 + 7);
  });

  it('counts open watches of the platform resources by resource, over every scope', () => {
    expect(watchCounts(scrape)).toEqual({ pods: 5 });
  });

  it('subtracts key by key and leaves out what comes to zero', () => {
    const difference = subtract(
      { 'GET pods': 10, 'LIST pods': 2 },
      { 'GET pods': 4, 'LIST pods': 2 },
      { 'GET pods': 1 },
    );
    expect(difference).toEqual({ 'GET pods': 5 });
    expect(subtract({ sessions: 3 }, { sessions: 3, pods: 1 })).toEqual({ pods: -1 });
    expect(sum(difference)).toBe(5);
  });
});
