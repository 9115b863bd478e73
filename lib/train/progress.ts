// A one-line terminal progress bar (only on a TTY; silent otherwise).
import type { StepMetrics } from './metrics';

function fmtTime(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    sec = Math.floor(s % 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

export class ProgressBar {
  private readonly tty: boolean;
  private last = 0;
  constructor(
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = !!stream.isTTY;
  }

  update(m: StepMetrics, elapsedS: number, doneSteps: number): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.last < 100 && m.step + 1 < this.total) return;
    this.last = now;
    const frac = (m.step + 1) / this.total;
    const width = 20;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    const eta = doneSteps > 0 ? (elapsedS / doneSteps) * (this.total - m.step - 1) : NaN;
    const line = `[${bar}] ${m.step + 1}/${this.total} loss ${m.loss.toFixed(3)} (con ${m.lossCon.toFixed(3)} v ${m.lossV.toFixed(3)} a ${m.lossA.toFixed(3)}) ${m.clipsPerSec.toFixed(1)} clips/s ETA ${fmtTime(eta)}`;
    this.stream.write(`\r${line.slice(0, (this.stream.columns || 120) - 1)}\x1b[K`);
  }

  done(): void {
    if (this.tty) this.stream.write('\n');
  }
}
