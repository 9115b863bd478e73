// Small helpers of the benchmark driver: statistics, machine facts,
// deterministic inputs, logging. No cmac imports here.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Median absolute deviation over the median (a robust spread, 0.05 = 5 %). */
function relSpread(xs) {
  const m = median(xs);
  return median(xs.map((x) => Math.abs(x - m))) / m;
}

function round(x, digits = 3) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}

function sh(cmd, args) {
  try {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20000 });
    return r.status === 0 ? r.stdout.trim() : null;
  } catch {
    return null;
  }
}

/** What the machine is: CPU model (/proc/cpuinfo), cores, RAM, OS, load. */
function machine() {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  let flags = [];
  try {
    const ci = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^model name\s*:\s*(.*)$/m.exec(ci);
    if (m) cpuModel = m[1].trim();
    const f = /^flags\s*:\s*(.*)$/m.exec(ci);
    if (f) flags = f[1].split(/\s+/).filter((x) => /^(avx|avx2|avx512f|avx512_vnni|fma|amx_tile)$/.test(x));
  } catch {
    /* not Linux */
  }
  let osName = `${os.type()} ${os.release()}`;
  try {
    const r = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(fs.readFileSync('/etc/os-release', 'utf8'));
    if (r) osName = `${r[1]} (kernel ${os.release()})`;
  } catch {
    /* keep */
  }
  let cgroupCpus = null;
  try {
    const [q, p] = fs.readFileSync('/sys/fs/cgroup/cpu.max', 'utf8').trim().split(/\s+/);
    if (q !== 'max') cgroupCpus = Number(q) / Number(p);
  } catch {
    /* no cgroup v2 limit */
  }
  const nproc = sh('nproc', []);
  return {
    cpuModel,
    cpuFlags: flags,
    logicalCpus: os.cpus().length,
    nproc: nproc ? Number(nproc) : null,
    cgroupCpuLimit: cgroupCpus,
    ramGiB: round(os.totalmem() / 2 ** 30, 1),
    os: osName,
    node: process.version,
    hostname: os.hostname(),
  };
}

/** Versions of the Debian packages that make up the stack (dpkg), when present. */
function debPackages() {
  const out = {};
  for (const p of [
    'libtorch-dev',
    'libtorch1.13',
    'python3-torch',
    'python3-torchvision',
    'python3-torchaudio',
    'python3-av',
    'ffmpeg',
    'libopenblas0-pthread',
    'libopenblas0',
    'libdnnl2',
    'libdnnl-dev',
  ]) {
    const v = sh('dpkg-query', ['-W', '-f=${Version}', p]);
    if (v) out[p] = v;
  }
  return out;
}

function gitState() {
  const head = sh('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no']);
  return { commit: head, dirty: dirty === null ? null : dirty.length > 0 };
}

/** A small deterministic generator (xorshift32) for inputs. */
class Rng {
  constructor(seed) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  u32() {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.s = x;
    return x;
  }
  float() {
    return this.u32() / 4294967296;
  }
}

/**
 * A deterministic batch shaped like real clips: smooth moving blobs plus
 * noise in the frames (uint8 N,T,H,W,3), tones plus noise in the audio
 * (float32 N,samples at 16 kHz).
 * @param {number} n @param {number} frames @param {number} size @param {number} samples @param {number} seed
 * @returns {{ video: import('../dist/tensor').Tensor<'uint8'>, audio: import('../dist/tensor').Tensor<'float32'> }}
 */
function makeBatch(n, frames, size, samples, seed) {
  const rng = new Rng(seed);
  const video = new Uint8Array(n * frames * size * size * 3);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const cx = rng.float() * size,
      cy = rng.float() * size,
      r = (0.15 + 0.2 * rng.float()) * size;
    const col = [rng.u32() & 255, rng.u32() & 255, rng.u32() & 255];
    for (let t = 0; t < frames; t++) {
      const dx = t * 2;
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const inside = (x - cx - dx) ** 2 + (y - cy) ** 2 < r * r;
          for (let c = 0; c < 3; c++) {
            const base = inside ? col[c] : 40 + ((x + y + 8 * c) & 63);
            video[k++] = Math.max(0, Math.min(255, base + ((rng.u32() & 31) - 16)));
          }
        }
      }
    }
  }
  const audio = new Float32Array(n * samples);
  for (let i = 0; i < n; i++) {
    const f = 200 + 3000 * rng.float();
    for (let s = 0; s < samples; s++) {
      audio[i * samples + s] =
        0.3 * Math.sin((2 * Math.PI * f * s) / 16000) * (0.6 + 0.4 * Math.sin(s / 3000)) + 0.02 * (rng.float() * 2 - 1);
    }
  }
  return {
    video: { data: video, shape: [n, frames, size, size, 3], dtype: 'uint8' },
    audio: { data: audio, shape: [n, samples], dtype: 'float32' },
  };
}

/** Resident set size and its peak (VmHWM) of this process, bytes (Linux). */
function procMem() {
  try {
    const s = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = (k) => {
      const m = new RegExp(`^${k}:\\s*(\\d+)`, 'm').exec(s);
      return m ? Number(m[1]) * 1024 : null;
    };
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return { rss: process.memoryUsage().rss, peak: null };
  }
}

function log(...a) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);
}

module.exports = { root, median, relSpread, round, nowMs, machine, debPackages, gitState, Rng, makeBatch, procMem, log, sh };
