/**
 * Training progress on stderr: a live bar (loss, examples/s, ETA) on a terminal, a line every few seconds
 * otherwise (logs, CI), or nothing. stdout stays free for results and --json.
 */
import cliProgress from 'cli-progress';

export type ProgressMode = 'bar' | 'lines' | 'none';

export interface ProgressInfo {
  epoch: number;
  epochs: number;
  loss: number;
  examplesPerSecond: number;
}

export function defaultProgressMode(): ProgressMode {
  return process.stderr.isTTY ? 'bar' : 'lines';
}

export class Progress {
  private readonly bar: cliProgress.SingleBar | null = null;
  private done: number;
  private lastLine = 0;
  private readonly start = performance.now();
  private readonly startDone: number;
  /** The bar's last values: a restart after note() must redraw them, not the format's {placeholders}. */
  private payload: Record<string, string | number>;

  /**
   * `epochs` fills the first frame (before any step has run) with the real epoch count; without it the
   * first frame reads `epoch -/-`.
   */
  constructor(
    private readonly mode: ProgressMode,
    private readonly total: number,
    done = 0,
    epochs?: number,
  ) {
    this.done = done;
    this.startDone = done;
    const perEpoch = epochs && epochs > 0 ? total / epochs : 0;
    this.payload = {
      epoch: perEpoch > 0 ? Math.min(epochs!, Math.floor(done / perEpoch) + 1) : '-',
      epochs: epochs && epochs > 0 ? epochs : '-',
      loss: '-',
      eps: '-',
    };
    if (mode === 'bar') {
      this.bar = new cliProgress.SingleBar(
        {
          format: 'epoch {epoch}/{epochs} |{bar}| {percentage}% | loss {loss} | {eps} ex/s | ETA {eta_formatted}',
          stream: process.stderr,
          hideCursor: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, done, { ...this.payload });
    }
  }

  tick(p: ProgressInfo): void {
    this.done++;
    const payload = { epoch: p.epoch, epochs: p.epochs, loss: p.loss.toFixed(4), eps: Math.round(p.examplesPerSecond).toLocaleString('en-US') };
    this.payload = payload;
    if (this.bar) {
      this.bar.update(this.done, payload);
      return;
    }
    if (this.mode === 'lines') {
      const now = performance.now();
      if (now - this.lastLine > 5000 || this.done === this.total) {
        this.lastLine = now;
        const rate = (this.done - this.startDone) / ((now - this.start) / 1000);
        const eta = rate > 0 ? Math.round((this.total - this.done) / rate) : 0;
        process.stderr.write(`epoch ${payload.epoch}/${payload.epochs} step ${this.done}/${this.total} loss ${payload.loss} ${payload.eps} ex/s ETA ${eta}s\n`);
      }
    }
  }

  /** A message line that does not break the bar. */
  note(msg: string): void {
    if (this.mode === 'none') return;
    if (this.bar) {
      this.bar.stop();
      process.stderr.write(msg + '\n');
      this.bar.start(this.total, this.done, { ...this.payload });
    } else process.stderr.write(msg + '\n');
  }

  stop(): void {
    this.bar?.stop();
  }
}
