import type { Readable } from 'node:stream';

/**
 * A response body read as UTF-8 text as it arrives, each chunk decoded (a character split between
 * chunks included) and let go: `onText` gets the whole text at its end. Collecting the chunks and
 * decoding them at the end held each list page three times in native memory at once — its chunks,
 * their Buffer.concat and the string decoded from that, which Node makes an external string past
 * about 1 MB of ASCII — ~2.5–3 MB each for a page of 500 Pods or Deployments, all freed only when
 * V8 next collected, and glibc kept much of it after its first freed multi-MiB block raised its
 * mmap threshold (BENCHMARKS.md, W11 and X1–X6). Decoded here, the text is V8 heap, which V8 counts
 * and collects by its own measure, and JSON.parse flattens it once.
 */
export function readText(body: Readable, onText: (text: string) => void, sink?: () => TextSink | undefined): void {
  let text = '';
  // Asked for at the first chunk, when the answer's status is known (a list's items are split
  // from a 2xx answer only; a refusal's text is read whole, for its error).
  let into: TextSink | undefined | null = null;
  body.setEncoding('utf8');
  body.on('data', (chunk: string) => {
    if (into === null) into = sink?.();
    if (into) into.write(chunk);
    else text += chunk;
  });
  body.on('end', () => {
    if (into === null) into = sink?.();
    onText(into ? into.end() : text);
  });
}

/** Takes a body's text as it arrives instead of readText collecting it; `end` gives what stands for the whole. */
export interface TextSink {
  write(chunk: string): void;
  end(): string;
}
