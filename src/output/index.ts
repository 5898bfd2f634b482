import { extname } from 'node:path';
import { JsonWriter } from './json-writer.js';
import { JsonlWriter } from './jsonl-writer.js';
import { NpyWriter } from './npy-writer.js';
import { OUTPUT_FORMATS, type OutputFormat, type OutputWriter, type RunHeader } from './records.js';

export * from './records.js';
export { manifestPathFor } from './manifest.js';
export { partialPath } from './file-sink.js';

/** `-o -` is JSONL on stdout; otherwise the extension decides unless --format says. */
export function resolveFormat(output: string, format?: string): OutputFormat {
  if (format !== undefined) {
    if (!OUTPUT_FORMATS.includes(format as OutputFormat)) {
      throw new Error(`--format must be one of ${OUTPUT_FORMATS.join(', ')}, got '${format}'`);
    }
    if (output === '-' && format !== 'jsonl') throw new Error(`--format ${format} cannot go to stdout (-o -); use jsonl`);
    return format as OutputFormat;
  }
  if (output === '-') return 'jsonl';
  const ext = extname(output).toLowerCase().slice(1);
  if (ext === 'ndjson') return 'jsonl';
  if (OUTPUT_FORMATS.includes(ext as OutputFormat)) return ext as OutputFormat;
  throw new Error(`-o ${output}: cannot tell the format from the extension '${extname(output)}'; use .npy, .json, .jsonl or --format`);
}

export async function createWriter(output: string, format: OutputFormat, header: RunHeader): Promise<OutputWriter> {
  if (output === '-') return JsonlWriter.toStream(process.stdout);
  switch (format) {
    case 'npy':
      return NpyWriter.create(output, header);
    case 'json':
      return JsonWriter.create(output, header);
    case 'jsonl':
      return JsonlWriter.toFile(output);
  }
}
