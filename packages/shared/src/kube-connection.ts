import * as k8s from '@kubernetes/client-node';

/**
 * Loads credentials the way kubectl does: $KUBECONFIG, then ~/.kube/config, then the in-cluster
 * service account. Fails with an actionable message when none applies.
 */
export function loadKubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromDefault();
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new Error(
      'no Kubernetes cluster configured: set KUBECONFIG to a kubeconfig file (scripts/cluster env prints one for the local cluster) or run inside a pod with a service account',
    );
  }
  return kc;
}

export { k8s };
