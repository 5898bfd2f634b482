import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FileSink, partialPath } from './file-sink.js';
import { failureFields, failureLine, headerLine, readJournal, summaryLine } from './journal.js';
import { rowLine } from './jsonl-writer.js';
import { identityFields, pathFields, regionFields, type FailureRecord, type OutputWriter, type RowRecord, type RunHeader, type RunSummary } from './records.js';

/** feats.json's journal: `.feats.json.journal.partial` (never renamed; removed once feats.json is complete). */
export function jsonJournalPath(outputPath: string): string {
  return partialPath(journalName(outputPath));
}

const journalName = (outputPath: string) => join(dirname(outputPath), `${basename(outputPath)}.journal`);

type Item = { index: number; path: string; width: number; height: number; descriptor: number[] } & Record<string, unknown>;

/** The one JSON object's pieces, so streaming and assembling from a journal give the same bytes. */
const jsonText = {
  head: (header: RunHeader) => `${JSON.stringify(header).slice(0, -1)},"items":[`,
  item: (item: Item, first: boolean) => `${first ? '\n' : ',\n'}${JSON.stringify(item)}`,
  tail: (failures: string[], summary: RunSummary) =>
    `\n],"failures":[${failures.length ? `\n${failures.join(',\n')}\n` : ''}],"summary":${JSON.stringify(summary)}}\n`,
  failure: (f: FailureRecord) => JSON.stringify(failureFields(f)),
};

/**
 * One JSON object: the run's options, `items` (rows in input order) and `failures`. To a file, the
 * records go to a JSONL journal as they come (resumable like .jsonl) and the JSON is assembled
 * from it at the end, synced and renamed into place. To a FIFO or device, items are streamed and
 * the (small) failures held until the end.
 */
export class JsonWriter implements OutputWriter {
  private count = 0;
  private readonly failures: string[] = [];

  private constructor(
    private readonly path: string,
    private readonly target: string,
    private readonly header: RunHeader,
    private readonly journal: FileSink | undefined,
    private readonly direct: FileSink | undefined,
  ) {}

  static async create(path: string, header: RunHeader, target = path): Promise<JsonWriter> {
    const journal = await FileSink.create(journalName(path), { target, file: `journal of ${basename(path)}` });
    await journal.append(headerLine(header));
    await journal.flush();
    return new JsonWriter(path, target, header, journal, undefined);
  }

  static async resume(path: string, header: RunHeader, journalBytes: number, target = path): Promise<JsonWriter> {
    const journal = await FileSink.reopen(journalName(path), journalBytes, { target, file: `journal of ${basename(path)}` });
    return new JsonWriter(path, target, header, journal, undefined);
  }

  static async toDevice(path: string, header: RunHeader, target = path): Promise<JsonWriter> {
    const direct = await FileSink.direct(path, { target, file: basename(path) });
    await direct.append(jsonText.head(header));
    return new JsonWriter(path, target, header, undefined, direct);
  }

  get paths(): readonly string[] {
    return [this.path];
  }

  async row(rec: RowRecord): Promise<void> {
    if (this.journal) return this.journal.append(rowLine(rec));
    const item = { index: rec.index, ...pathFields(rec), ...regionFields(rec.region), width: rec.width, height: rec.height, ...identityFields(rec), descriptor: Array.from(rec.descriptor) };
    await this.direct!.append(jsonText.item(item, this.count++ === 0));
  }

  async failure(rec: FailureRecord): Promise<void> {
    if (this.journal) return this.journal.append(failureLine(rec));
    this.failures.push(jsonText.failure(rec));
  }

  async close(summary: RunSummary): Promise<void> {
    if (this.direct) {
      await this.direct.append(jsonText.tail(this.failures, summary));
      await this.direct.commit();
      return;
    }
    const journal = this.journal!;
    await journal.append(summaryLine(summary));
    await journal.seal();
    const out = await FileSink.create(this.path, { target: this.target, file: basename(this.path) });
    try {
      await assemble(journal.tempPath!, this.header, summary, out);
      await out.commit();
    } catch (err) {
      await out.abandon();
      throw err;
    }
    // A run cut short keeps its journal: --resume goes on from it.
    if (summary.complete) await rm(journal.tempPath!, { force: true });
  }

  async abandon(): Promise<void> {
    await Promise.all([this.journal?.abandon(), this.direct?.abandon()]);
  }
}

/** Two passes over the journal (items, then failures) so memory stays flat however many rows. */
async function assemble(journalPath: string, header: RunHeader, summary: RunSummary, out: FileSink): Promise<void> {
  await out.append(jsonText.head(header));
  let first = true;
  await readJournal(journalPath, async ({ line }) => {
    if (line.type !== 'row') return;
    const { type: _t, row: _r, ...item } = line;
    await out.append(jsonText.item(item as Item, first));
    first = false;
  });
  const failures: string[] = [];
  await readJournal(journalPath, ({ line }) => {
    if (line.type === 'failure') {
      const { type: _t, ...fields } = line;
      failures.push(JSON.stringify(fields));
    }
  });
  await out.append(jsonText.tail(failures, summary));
}
