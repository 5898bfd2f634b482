import ora, { type Ora } from 'ora';
import type { RunProgress } from '../pipeline/run.js';

export interface Reporter {
  start(total: number): void;
  update(p: RunProgress): void;
  /** One line on stderr that stays (failures, warnings). */
  line(text: string): void;
  stop(): void;
}

function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

export function progressText(p: RunProgress): string {
  const rate = p.elapsedMs > 0 ? (p.done * 1000) / p.elapsedMs : 0;
  const eta = rate > 0 ? formatDuration(((p.total - p.done) / rate) * 1000) : '?';
  const failed = p.failures > 0 ? ` · ${p.failures} failed` : '';
  return `${p.done}/${p.total} images · ${rate.toFixed(1)} img/s · ETA ${eta}${failed}`;
}

/** ora spinner on stderr when it is a TTY; otherwise only the persistent lines. Never touches stdout. */
export function createReporter(opts: { quiet: boolean; stream?: NodeJS.WriteStream }): Reporter {
  const stream = opts.stream ?? process.stderr;
  // A pty that reports 0 columns (e.g. under `script` with no terminal) makes ora clear lines forever.
  const interactive = !opts.quiet && stream.isTTY === true && (stream.columns ?? 0) > 0;
  let spinner: Ora | undefined;
  let lastRender = 0;
  return {
    start(total) {
      if (interactive) spinner = ora({ stream, text: `0/${total} images` }).start();
    },
    update(p) {
      const now = Date.now();
      // Re-rendering every image costs time on fast runs; 10 Hz is plenty for a human.
      if (spinner && (now - lastRender > 100 || p.done === p.total)) {
        spinner.text = progressText(p);
        lastRender = now;
      }
    },
    line(text) {
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

export { formatDuration };
