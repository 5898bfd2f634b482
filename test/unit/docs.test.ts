/**
 * The documentation's shape: the README stays a landing page, docs/cli.md names every flag of the
 * options table and docs/library.md every library key, commands sit in blocks the harness runs
 * (test/e2e/docs.test.ts), and relative links lead to files that exist.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { OPTIONS, flagName } from '../../src/core/options.js';
import { blockName, docBlocks, docFiles, isShell, readDoc } from '../helpers/doc-blocks.js';
import { REPO_ROOT } from '../helpers/shared.js';

test('README.md is a landing page: at most 150 lines, the two set-up commands, links to every docs/ page', () => {
  const readme = readDoc('README.md');
  const lines = readme.trimEnd().split('\n').length;
  assert.ok(lines <= 150, `README.md has ${lines} lines; the manual goes in docs/`);
  assert.match(readme, /^## Set-up \(two commands\)$/m);
  for (const page of docFiles().filter((f) => f.startsWith('docs/'))) assert.ok(readme.includes(`](${page})`), `README links to ${page}`);
});

test('docs/cli.md names every flag of the options table', () => {
  const cli = readDoc('docs/cli.md');
  const named = (flag: string) => new RegExp(`(\`|, )${flag}[\` ]`).test(cli);
  const missing = OPTIONS.map(flagName).filter((f) => !named(f));
  assert.deepEqual(missing, [], `flags in src/core/options.ts that docs/cli.md does not name: ${missing.join(', ')}`);
  for (const o of OPTIONS.filter((d) => d.short)) assert.ok(cli.includes(`\`${o.short}, ${flagName(o)}`), `docs/cli.md shows ${o.short} with ${flagName(o)}`);
});

test('docs/library.md names every library key of the options table', () => {
  const lib = readDoc('docs/library.md');
  const missing = OPTIONS.filter((o) => !o.cliOnly && !lib.includes(`\`${o.key}\``)).map((o) => o.key);
  assert.deepEqual(missing, [], `library keys in src/core/options.ts that docs/library.md does not name: ${missing.join(', ')}`);
});

test('commands are in ```sh / ```bash blocks (which the harness runs), never in an unlabelled one', () => {
  const hidden = docFiles().flatMap(docBlocks)
    .filter((b) => !isShell(b) && /^(\$ )?(npx )?spp-extract /m.test(b.code) && b.lang !== 'yaml')
    .map(blockName);
  assert.deepEqual(hidden, [], 'blocks holding spp-extract commands that are not sh/bash (use ```text for output)');
  const shell = docFiles().flatMap(docBlocks).filter(isShell);
  assert.ok(shell.length > 0);
  for (const b of shell.filter((x) => x.notRun !== undefined)) assert.ok(b.notRun!.length > 0, `${blockName(b)}: <!-- not run: --> gives a reason`);
});

test('relative links in README.md and docs/ lead to files that exist', () => {
  const broken: string[] = [];
  for (const file of docFiles()) {
    for (const m of readDoc(file).matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/.test(target)) continue;
      if (!existsSync(join(REPO_ROOT, dirname(file), target))) broken.push(`${file}: ${target}`);
    }
  }
  assert.deepEqual(broken, []);
});

test('the block parser: fences, <!-- not run --> and <!-- exit --> marks, languages', () => {
  const blocks = docBlocks('docs/clusters.md');
  const slurm = blocks.find((b) => b.code.startsWith('#!/bin/bash\n#SBATCH'));
  assert.ok(slurm && slurm.lang === 'bash' && /Slurm/.test(slurm.notRun ?? ''), 'the Slurm job block is bash and marked not run');
  assert.ok(blocks.some((b) => isShell(b) && b.notRun === undefined), 'clusters.md has a block that runs');
});
