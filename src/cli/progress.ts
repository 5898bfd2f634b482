import type { Ora } from 'ora';
import { interruptedBySignal } from '../core/interrupt-cleanup.js';
import type { RunProgress } from '../pipeline/run.js';
import { printable } from '../core/printable.js';
import { formatDuration } from './text.js';

export { formatDuration, plural } from './text.js';

export interface Reporter {
  start(total: number): void;
  update(p: RunProgress): void;
  /** One line on stderr that stays (failures, warnings). */
  line(text: string): void;
  /** The spinner's text for a stage without images (a fit's passes); nothing without a terminal. */
  status(text: string): void;
  stop(): void;
}

/** img/s counts images that became rows; the ETA counts every input, failures included. */
export function progressText(p: RunProgress): string {
  const secs = p.elapsedMs / 1000;
  const rate = secs > 0 ? p.imagesDone / secs : 0;
  const inputsPerSec = secs > 0 ? p.done / secs : 0;
  const eta = inputsPerSec > 0 ? formatDuration(((p.total - p.done) / inputsPerSec) * 1000) : '?';
  const failed = p.failures > 0 ? ` · ${p.failures} failed` : '';
  return `${p.done}/${p.total} ${p.total === 1 ? 'image' : 'images'} · ${rate.toFixed(1)} img/s · ETA ${eta}${failed}`;
}

/**
 * A pty that reports 0 columns (`script` without a terminal, some CI runners) would make ora count
 * every line as infinitely many and clear for ever: such a stream is seen as 80 wide.
 */
function withColumns(stream: NodeJS.WriteStream): NodeJS.WriteStream {
  if (!stream.isTTY || (stream.columns ?? 0) > 0) return stream;
  return new Proxy(stream, {
    get(target, key) {
      if (key === 'columns') return target.columns > 0 ? target.columns : 80;
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** https://no-color.org: set and not empty. */
export const noColor = (env: NodeJS.ProcessEnv = process.env) => (env.NO_COLOR ?? '') !== '';

/** ora spinner on stderr when it is a TTY (uncoloured under NO_COLOR); otherwise only the persistent lines. Never touches stdout. */
export async function createReporter(opts: { quiet: boolean; stream?: NodeJS.WriteStream; env?: NodeJS.ProcessEnv }): Promise<Reporter> {
  const stream = withColumns(opts.stream ?? process.stderr);
  const interactive = !opts.quiet && stream.isTTY === true;
  // ora (~50 ms to import) is loaded only when a spinner will really be drawn.
  const ora = interactive ? (await import('ora')).default : undefined;
  let spinner: Ora | undefined;
  let lastRender = 0;
  return {
    start(total) {
      if (ora) spinner = ora({ stream, text: `0/${total} ${total === 1 ? 'image' : 'images'}`, color: noColor(opts.env) ? false : 'cyan' }).start();
    },
    update(p) {
      const now = Date.now();
      // Re-rendering every image costs time on fast runs; 10 Hz is plenty for a human.
      if (spinner && (now - lastRender > 100 || p.done === p.total)) {
        spinner.text = progressText(p);
        lastRender = now;
      }
    },
    status(text) {
      if (!ora) return;
      spinner ??= ora({ stream, text, color: noColor(opts.env) ? false : 'cyan' }).start();
      spinner.text = text;
    },
    line(message) {
      // A signal's stop line was the last word: the images it cut short are not failures.
      if (interruptedBySignal()) return;
      // File names in messages can hold ESC, BEL, newlines: shown escaped, never acted on.
      const text = printable(message);
      if (spinner) {
        spinner.clear();
        stream.write(`${text}\n`);
        spinner.render();
      } else {
        stream.write(`${text}\n`);
      }
    },
    stop() {
      spinner?.stop();
      spinner = undefined;
    },
  };
}
