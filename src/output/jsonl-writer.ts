import type { Writable } from 'node:stream';
import { FileSink } from './file-sink.js';
import { descriptorToJson, type FailureRecord, type OutputWriter, type RowRecord, type RunSummary } from './records.js';

/**
 * One record per input and line, in input order: rows carry `descriptor`, failures carry `error`
 * and `reason` (so a consumer sees every input). Written to a file (temp + rename) or to a stream
 * (stdout), flushed as produced.
 */
export class JsonlWriter implements OutputWriter {
  private constructor(
    private readonly write: (line: string) => Promise<void>,
    private readonly finish: () => Promise<void>,
    readonly paths: readonly string[],
  ) {}

  static async toFile(path: string): Promise<JsonlWriter> {
    const sink = await FileSink.create(path);
    return new JsonlWriter((l) => sink.append(l), () => sink.commit(), [path]);
  }

  static toStream(stream: Writable): JsonlWriter {
    const write = (line: string) =>
      new Promise<void>((resolve, reject) => {
        // Respect backpressure so a slow consumer bounds our memory.
        const ok = stream.write(line, (err) => (err ? reject(err) : undefined));
        if (ok) resolve();
        else stream.once('drain', resolve);
      });
    return new JsonlWriter(write, async () => undefined, ['stdout']);
  }

  row(rec: RowRecord): Promise<void> {
    const line = { index: rec.index, path: rec.path, width: rec.width, height: rec.height, descriptor: descriptorToJson(rec.descriptor) };
    return this.write(JSON.stringify(line) + '\n');
  }

  failure(rec: FailureRecord): Promise<void> {
    return this.write(JSON.stringify({ index: rec.index, path: rec.path, error: rec.error, reason: rec.reason }) + '\n');
  }

  close(_summary: RunSummary): Promise<void> {
    return this.finish();
  }
}
