import { basename, dirname, join } from 'node:path';
import { FileSink } from './file-sink.js';
import { failureLine, headerLine, summaryLine } from './journal.js';
import { identityFields, pathFields, regionFields, type FailureRecord, type RowRecord, type RunHeader, type RunSummary } from './records.js';

/** feats.npy → feats.manifest.jsonl (same folder). */
export function manifestPathFor(outputPath: string): string {
  const name = basename(outputPath).replace(/\.npy$/i, '');
  return join(dirname(outputPath), `${name}.manifest.jsonl`);
}

/**
 * The .npy's journal (see journal.ts): a header line with the run's options, then for each input a
 * `row` (row number → path, original size) or a `failure` (reason, message), then a summary.
 */
export class ManifestWriter {
  private constructor(readonly sink: FileSink) {}

  static async create(path: string, header: RunHeader, target: string): Promise<ManifestWriter> {
    const sink = await FileSink.create(path, { target, file: `manifest ${basename(path)}` });
    await sink.append(headerLine(header));
    await sink.flush(); // a journal on disk always says what run it belongs to
    return new ManifestWriter(sink);
  }

  static async reopen(path: string, length: number, target: string): Promise<ManifestWriter> {
    return new ManifestWriter(await FileSink.reopen(path, length, { target, file: `manifest ${basename(path)}` }));
  }

  get path(): string {
    return this.sink.finalPath;
  }

  row(row: number, rec: Omit<RowRecord, 'descriptor'>): Promise<void> {
    const line = { type: 'row', row, index: rec.index, ...pathFields(rec), ...regionFields(rec.region), width: rec.width, height: rec.height, ...identityFields(rec) };
    return this.sink.append(JSON.stringify(line) + '\n');
  }

  failure(rec: FailureRecord): Promise<void> {
    return this.sink.append(failureLine(rec));
  }

  summary(summary: RunSummary): Promise<void> {
    return this.sink.append(summaryLine(summary));
  }
}
