import { FileSink } from './file-sink.js';
import { descriptorToJson, type FailureRecord, type OutputWriter, type RowRecord, type RunHeader, type RunSummary } from './records.js';

/**
 * One JSON object: the run's options, `items` (rows in input order) and `failures`. Items are
 * streamed to a temp file; failures (small) are held until the end.
 */
export class JsonWriter implements OutputWriter {
  private count = 0;
  private readonly failures: FailureRecord[] = [];

  private constructor(private readonly sink: FileSink) {}

  static async create(path: string, header: RunHeader): Promise<JsonWriter> {
    const sink = await FileSink.create(path);
    const head = JSON.stringify(header);
    await sink.append(`${head.slice(0, -1)},"items":[`);
    return new JsonWriter(sink);
  }

  get paths(): readonly string[] {
    return [this.sink.finalPath];
  }

  async row(rec: RowRecord): Promise<void> {
    const item = { index: rec.index, path: rec.path, width: rec.width, height: rec.height, descriptor: descriptorToJson(rec.descriptor) };
    await this.sink.append(`${this.count++ === 0 ? '\n' : ',\n'}${JSON.stringify(item)}`);
  }

  async failure(rec: FailureRecord): Promise<void> {
    this.failures.push(rec);
  }

  async close(summary: RunSummary): Promise<void> {
    const failures = this.failures.map((f) => JSON.stringify(f)).join(',\n');
    await this.sink.append(`\n],"failures":[${failures ? `\n${failures}\n` : ''}],"summary":${JSON.stringify(summary)}}\n`);
    await this.sink.commit();
  }
}
