import { basename, dirname, join } from 'node:path';
import { FileSink } from './file-sink.js';
import type { FailureRecord, RowRecord, RunHeader, RunSummary } from './records.js';

/** feats.npy → feats.manifest.jsonl (same folder). */
export function manifestPathFor(outputPath: string): string {
  const name = basename(outputPath).replace(/\.npy$/i, '');
  return join(dirname(outputPath), `${name}.manifest.jsonl`);
}

/**
 * JSONL, one line per event, in input order: a header line with the run's options, then for each
 * input a `row` (row number → path, original size) or a `failure` (reason, message), then a summary.
 */
export class ManifestWriter {
  private constructor(private readonly sink: FileSink) {}

  static async create(path: string, header: RunHeader): Promise<ManifestWriter> {
    const sink = await FileSink.create(path);
    await sink.append(JSON.stringify({ type: 'header', ...header }) + '\n');
    await sink.flush(); // a journal on disk always says what run it belongs to
    return new ManifestWriter(sink);
  }

  static async reopen(path: string, length: number): Promise<ManifestWriter> {
    return new ManifestWriter(await FileSink.reopen(path, length));
  }

  get path(): string {
    return this.sink.finalPath;
  }

  row(row: number, rec: Omit<RowRecord, 'descriptor'>): Promise<void> {
    const line = { type: 'row', row, index: rec.index, path: rec.path, width: rec.width, height: rec.height };
    return this.sink.append(JSON.stringify(line) + '\n');
  }

  failure(rec: FailureRecord): Promise<void> {
    return this.sink.append(JSON.stringify({ type: 'failure', ...rec }) + '\n');
  }

  async close(summary: RunSummary): Promise<void> {
    await this.sink.append(JSON.stringify({ type: 'summary', ...summary }) + '\n');
    await this.sink.commit();
  }
}
