// Client of bench/reference/cmac_ref.py's JSON-lines server: one Python
// process holding the PyTorch reference models, driven request by request so
// that cmac and PyTorch steps can alternate under the same machine load.
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const { spawn, spawnSync } = require('child_process');

const PYTHON = process.env.CMAC_BENCH_PYTHON || '/usr/bin/python3';
const SCRIPT = path.join(__dirname, 'reference', 'cmac_ref.py');

/** null when the reference can run, else why not (with the fix). */
function pythonProblem() {
  if (!fs.existsSync(PYTHON)) return `${PYTHON} not found. Fix: npm run setup -- --python`;
  const r = spawnSync(PYTHON, ['-c', 'import torch, torchvision, torchaudio, av; print(torch.__version__)'], {
    encoding: 'utf8',
    timeout: 120000,
  });
  if (r.status !== 0) {
    return (
      `${PYTHON} cannot import torch, torchvision, torchaudio and av (${(r.stderr || '').trim().split('\n').pop()}). ` +
      'Fix: npm run setup -- --python (apt python3-torch python3-torchvision python3-torchaudio python3-av)'
    );
  }
  return null;
}

/** Environment of the reference process: one OpenBLAS thread, as cmac forces for itself. */
function pyEnv(extra = {}) {
  /** @type {NodeJS.ProcessEnv} */
  const env = { ...process.env, OPENBLAS_NUM_THREADS: '1', GOTO_NUM_THREADS: '1', PYTHONUNBUFFERED: '1', ...extra };
  delete env.OMP_NUM_THREADS; // threads are set through torch.set_num_threads, as cmac's setNumThreads
  return env;
}

class PyRef {
  constructor(env = {}) {
    this.proc = spawn(PYTHON, [SCRIPT, 'serve'], { env: pyEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
    this.stderr = '';
    this.proc.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d.toString()).slice(-20000);
    });
    this.waiting = [];
    this.exited = null;
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const w = this.waiting.shift();
      if (!w) return;
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        w.reject(new Error(`reference server sent a non-JSON line: ${line.slice(0, 200)}`));
        return;
      }
      if (msg.ok) w.resolve(msg);
      else w.reject(new Error(`reference: ${msg.error}\n${msg.trace || ''}`));
    });
    this.proc.on('exit', (code, sig) => {
      this.exited = `reference server exited (code ${code}, signal ${sig}); stderr tail:\n${this.stderr.slice(-3000)}`;
      for (const w of this.waiting.splice(0)) w.reject(new Error(this.exited));
    });
  }

  call(req) {
    if (this.exited) return Promise.reject(new Error(this.exited));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.proc.stdin.write(JSON.stringify(req) + '\n');
    });
  }

  async close() {
    if (this.exited) return;
    const done = new Promise((r) => this.proc.once('exit', r));
    try {
      await Promise.race([this.call({ cmd: 'quit' }), done]);
    } catch {
      /* exiting anyway */
    }
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await done;
    clearTimeout(t);
  }
}

/** Runs the reference script once with arguments and returns its last stdout line as JSON. */
function runPyJson(args, env = {}, timeoutMs = 600000) {
  const r = spawnSync(PYTHON, [SCRIPT, ...args], { env: pyEnv(env), encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  if (r.status !== 0)
    throw new Error(`${PYTHON} ${SCRIPT} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || '').slice(-2000)}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

module.exports = { PyRef, pythonProblem, runPyJson, PYTHON, SCRIPT };
