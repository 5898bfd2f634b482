import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './shared.js';

/**
 * A fenced block of README.md or docs/*.md, with the HTML comments right above it:
 *   <!-- not run: REASON -->  the harness lists it as skipped, with the reason
 *   <!-- exit: N -->          the exit status the block is expected to end with (default 0)
 * (<!-- recipe: NAME --> marks the cluster recipes that scripts/e2e reads; it changes nothing here.)
 */
export interface DocBlock {
  /** Path relative to the repo root. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  code: string;
  notRun?: string;
  exit: number;
}

/** README.md, then docs/*.md in name order. */
export function docFiles(): string[] {
  const docs = readdirSync(join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort();
  return ['README.md', ...docs.map((f) => `docs/${f}`)];
}

export function readDoc(file: string): string {
  return readFileSync(join(REPO_ROOT, file), 'utf8');
}

export function docBlocks(file: string): DocBlock[] {
  const lines = readDoc(file).split('\n');
  const out: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const close = lines.findIndex((l, j) => j > i && /^```\s*$/.test(l));
    if (close < 0) throw new Error(`${file}:${i + 1}: a fenced block that is never closed`);
    const block: DocBlock = { file, line: i + 1, lang: open[1]!, code: lines.slice(i + 1, close).join('\n') + '\n', exit: 0 };
    for (let j = i - 1; j >= 0 && /^<!--.*-->\s*$/.test(lines[j]!); j--) {
      const m = /^<!--\s*([a-z ]+):\s*(.*?)\s*-->\s*$/.exec(lines[j]!);
      if (m?.[1] === 'not run') block.notRun = m[2];
      if (m?.[1] === 'exit') block.exit = Number(m[2]);
    }
    out.push(block);
    i = close;
  }
  return out;
}

/** Shell blocks are commands; every other language (text, python, ts, yaml) is shown, not run. */
export const isShell = (b: DocBlock) => b.lang === 'sh' || b.lang === 'bash';

export const blockName = (b: DocBlock) => `${b.file}:${b.line}`;
