import type { WatchTransport } from '@streamspace/kube';

function nameOf(object: unknown): unknown {
  return (object as { metadata?: { name?: unknown } } | null)?.metadata?.name;
}

/**
 * A transport that passes on only objects whose name starts with `prefix` (and everything that
 * names no object: bookmarks, errors, malformed items, which the watch itself judges). Names never
 * change, so an object is either always seen or never, and the cache never loses one halfway.
 */
export function nameFilterTransport(inner: WatchTransport, prefix: string): WatchTransport {
  const keep = (object: unknown) => {
    const name = nameOf(object);
    return typeof name !== 'string' || name.startsWith(prefix);
  };
  return {
    list(options, onItem) {
      return inner.list(options, (item) => {
        if (keep(item)) onItem(item);
      });
    },
    watch(resourceVersion, timeoutSeconds, onEvent, onDone, onAnswered) {
      return inner.watch(
        resourceVersion,
        timeoutSeconds,
        (type, object) => {
          if (type === 'BOOKMARK' || type === 'ERROR' || keep(object)) onEvent(type, object);
        },
        onDone,
        onAnswered,
      );
    },
  };
}
