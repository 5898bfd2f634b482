import { basename } from 'node:path';
import type { Writable } from 'node:stream';
import { OutputError } from './errors.js';
import { FileSink } from './file-sink.js';
import { failureLine, headerLine, summaryLine, type LineSink } from './journal.js';
import { descriptorToJson, identityFields, pathFields, regionFields, type FailureRecord, type OutputWriter, type RowRecord, type RunHeader, type RunSummary } from './records.js';

export function rowLine(rec: RowRecord): string {
  const line = {
    type: 'row', index: rec.index, ...pathFields(rec), ...regionFields(rec.region), width: rec.width, height: rec.height, ...identityFields(rec), descriptor: descriptorToJson(rec.descriptor),
  };
  return JSON.stringify(line) + '\n';
}

/** stdout as a LineSink: respects backpressure (a slow reader bounds our memory), every write checked. */
export function streamSink(stream: Writable, target: string): LineSink {
  let failure: OutputError | undefined;
  const waiting = new Set<(err: OutputError) => void>();
  const fail = (err: Error) => {
    failure ??= new OutputError(target, 'cannot write to stdout', err);
    for (const reject of waiting) reject(failure);
    waiting.clear();
  };
  // The first error (EPIPE when the reader left) decides; later ones (a destroyed stream) echo it.
  stream.on('error', fail);
  return {
    append: (line) =>
      new Promise<void>((resolve, reject) => {
        if (failure) return reject(failure);
        const ok = stream.write(line, (err) => (err ? fail(err) : undefined));
        if (ok) return resolve();
        // Waiting for 'drain', which never comes once the stream has failed: the error ends the wait.
        const onDrain = () => {
          waiting.delete(reject);
          resolve();
        };
        waiting.add(reject);
        stream.once('drain', onDrain);
      }),
  };
}

/**
 * The journal itself, with descriptors: a header line, one `row` or `failure` line per input in
 * input order, a `summary` line. A file is written under a temp name and renamed at the end; a run
 * cut short leaves the temp name (kill) or a summary saying `complete: false` (Ctrl-C), and either
 * resumes. stdout, a FIFO or a device get the same lines, streamed.
 */
export class JsonlWriter implements OutputWriter {
  private constructor(
    private readonly sink: LineSink,
    private readonly file: FileSink | undefined,
    readonly paths: readonly string[],
  ) {}

  static async toFile(path: string, header: RunHeader, target = path): Promise<JsonlWriter> {
    const file = await FileSink.create(path, { target, file: basename(path) });
    const writer = new JsonlWriter(file, file, [path]);
    await file.append(headerLine(header));
    return writer;
  }

  static async resume(path: string, bytes: number, target = path): Promise<JsonlWriter> {
    const file = await FileSink.reopen(path, bytes, { target, file: basename(path) });
    return new JsonlWriter(file, file, [path]);
  }

  /** A FIFO or character device named by -o. */
  static async toDevice(path: string, header: RunHeader, target = path): Promise<JsonlWriter> {
    const file = await FileSink.direct(path, { target, file: basename(path) });
    const writer = new JsonlWriter(file, file, [path]);
    await file.append(headerLine(header));
    return writer;
  }

  static async toStream(stream: Writable, header: RunHeader): Promise<JsonlWriter> {
    const writer = new JsonlWriter(streamSink(stream, '-'), undefined, ['stdout']);
    await writer.sink.append(headerLine(header));
    return writer;
  }

  row(rec: RowRecord): Promise<void> {
    return this.sink.append(rowLine(rec));
  }

  failure(rec: FailureRecord): Promise<void> {
    return this.sink.append(failureLine(rec));
  }

  async close(summary: RunSummary): Promise<void> {
    await this.sink.append(summaryLine(summary));
    await this.file?.commit();
  }

  async abandon(): Promise<void> {
    await this.file?.abandon();
  }
}
