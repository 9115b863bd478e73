#!/usr/bin/env node
// Turns bench/results.json into derived ratios and docs/benchmarks.md.
// Every number in the markdown comes from the results file; re-render with
//   node bench/report.js [bench/results.json] [docs/benchmarks.md]
'use strict';
const fs = require('fs');
const path = require('path');

/** The project's targets (issue 8; the step ratios tightened by issue 18). Reported, never asserted. */
const TARGETS = {
  step: { tiny: 0.9, paper: 0.95 }, // cmac / PyTorch step time, at most (issue 18)
  boundaryShare: 0.02, // per-step boundary overhead / tiny step, below
  loaderVsPython: 1.5, // loader clips/s / PyAV clips/s, at least
  loaderVsStep: 1.0, // loader clips/s / tiny step consumption, above
  memoryGrowthMiB: 8, // RSS after 10k embeds - after 1k, below
};

const ok = (s) => s && !s.error && !s.skipped;
const MiB = (b) => b / 2 ** 20;

function derive(r) {
  const S = r.sections || {};
  /** @type {{ targets: { name: string, value: unknown, goal: string, met: boolean, unit: string }[], [k: string]: any }} */
  const d = { targets: [] };
  const target = (name, value, goal, met, unit = '') => d.targets.push({ name, value, goal, met, unit });

  if (ok(S.check)) {
    const pre = Math.max(...S.check.cases.map((c) => c.maxErr));
    const post = Math.max(...S.check.cases.map((c) => c.maxErrAfterStep));
    target(
      `fairness check: loss terms, same weights + inputs (${S.check.cases.map((c) => c.preset).join(', ')}; Adam rule within 8 ulp: ${S.check.cases.every((c) => c.adamRulePass) ? 'yes' : 'no'}; after one Adam step ${fe(post)})`,
      pre,
      '<= 1e-5',
      S.check.pass,
      'max error',
    );
  }
  const stepRows = ok(S.step) ? S.step.rows : [];
  d.step = [];
  for (const row of stepRows) {
    const goal = TARGETS.step[row.preset];
    const one = stepRows.find((y) => y.preset === row.preset && y.threads === 1);
    // More threads made a side slower: the cores were busy with other jobs, and the
    // comparison measures how each OpenMP runtime copes with that, not the libraries.
    const contended = !!(
      row.threads > 1 &&
      one &&
      (row.python.medianMs > one.python.medianMs || row.cmac.medianWallMs > one.cmac.medianWallMs)
    );
    const met = contended ? null : row.ratio <= goal;
    // CPU time is steadier under load; say so when it would judge the target differently.
    const cpuDisagrees = !contended && row.cpuRatio !== undefined && row.cpuRatio <= goal !== met;
    d.step.push({ preset: row.preset, threads: row.threads, contended, met, cpuDisagrees });
    const note = contended
      ? ' — contended, see analysis'
      : cpuDisagrees
        ? ` — CPU-time ratio ${f(row.cpuRatio, 2)} says ${row.cpuRatio <= goal ? 'met' : 'missed'}`
        : '';
    target(
      `step ratio ${row.preset} (batch ${row.batch}, ${row.threads} thread${row.threads > 1 ? 's' : ''})${note}`,
      row.ratio,
      `<= ${goal}`,
      met,
      'cmac/PyTorch',
    );
  }
  const tinyRows = stepRows.filter((x) => x.preset === 'tiny');
  if (tinyRows.length) {
    d.boundary = tinyRows.map((x) => ({
      threads: x.threads,
      overheadUs: x.overheadMs * 1000,
      overheadMinUs: (x.overheadMinMs ?? NaN) * 1000,
      stepMs: x.cmac.medianWallMs,
      share: x.overheadMs / x.cmac.medianWallMs,
    }));
    const worst = d.boundary.reduce((a, b) => (b.share > a.share ? b : a));
    target(
      `boundary overhead per tiny step (${worst.threads} thread${worst.threads > 1 ? 's' : ''}, worst row)`,
      worst.share,
      `< ${TARGETS.boundaryShare}`,
      worst.share < TARGETS.boundaryShare,
      'share of step',
    );
    d.consumption = tinyRows.map((x) => ({ threads: x.threads, clipsPerSecond: x.batch / (x.cmac.medianWallMs / 1000) }));
  }
  if (ok(S.data)) {
    d.data = {};
    for (const [preset, row] of Object.entries(S.data.presets)) {
      const e = { loader: row.loaderClipsPerSecond, cached: row.trainCache ? row.trainCache.clipsPerSecond : undefined };
      if (row.python) {
        e.pyav = row.python.pyav.clipsPerSecond;
        e.readVideo = row.python.read_video.clipsPerSecond;
        e.vsPyav = e.loader / e.pyav;
        e.vsReadVideo = e.loader / e.readVideo;
        target(
          `loader vs PyAV DataLoader (${preset} clips, default: ${S.data.loaderFacts?.decoder === 'native' ? 'native libav decoder pool' : 'ffmpeg per clip group'})`,
          e.vsPyav,
          `>= ${TARGETS.loaderVsPython}`,
          e.vsPyav >= TARGETS.loaderVsPython,
          'x',
        );
        if (e.cached !== undefined) {
          e.cachedVsPyav = e.cached / e.pyav;
          target(
            `loader with trainCache vs PyAV DataLoader (${preset} clips, epochs after the first)`,
            e.cachedVsPyav,
            `>= ${TARGETS.loaderVsPython}`,
            e.cachedVsPyav >= TARGETS.loaderVsPython,
            'x',
          );
        }
      }
      d.data[preset] = e;
    }
    if (d.consumption && d.data.tiny) {
      const need = Math.max(...d.consumption.map((c) => c.clipsPerSecond));
      d.data.tiny.vsStep = d.data.tiny.loader / need;
      target(
        'loader (tiny clips, default) vs tiny-step consumption (fastest row)',
        d.data.tiny.vsStep,
        `> ${TARGETS.loaderVsStep}`,
        d.data.tiny.vsStep > TARGETS.loaderVsStep,
        'x',
      );
      if (d.data.tiny.cached !== undefined) {
        d.data.tiny.cachedVsStep = d.data.tiny.cached / need;
        target(
          'loader (tiny clips, trainCache) vs tiny-step consumption (fastest row)',
          d.data.tiny.cachedVsStep,
          `> ${TARGETS.loaderVsStep}`,
          d.data.tiny.cachedVsStep > TARGETS.loaderVsStep,
          'x',
        );
      }
    }
  }
  if (ok(S.memory)) {
    const s = S.memory.embed.samples;
    const first = s[0],
      last = s[s.length - 1];
    const growth = MiB(last.rss - first.rss);
    // least-squares slope of RSS over calls, bytes per call
    const n = s.length,
      mx = s.reduce((a, b) => a + b.calls, 0) / n,
      my = s.reduce((a, b) => a + b.rss, 0) / n;
    const slope =
      s.reduce((a, b) => a + (b.calls - mx) * (b.rss - my), 0) /
      Math.max(
        1e-9,
        s.reduce((a, b) => a + (b.calls - mx) ** 2, 0),
      );
    d.memory = {
      growthMiB: growth,
      fromCalls: first.calls,
      toCalls: last.calls,
      slopeBytesPerCall: slope,
      trainPeakMiB: MiB(S.memory.train.peak),
      trainPeakArena1MiB: S.memory.trainArena1 ? MiB(S.memory.trainArena1.peak) : null,
      pythonTrainPeakMiB: S.memory.python ? MiB(S.memory.python.peak) : null,
    };
    target(
      `RSS growth, embed calls ${first.calls} -> ${last.calls}`,
      growth,
      `< ${TARGETS.memoryGrowthMiB} MiB`,
      growth < TARGETS.memoryGrowthMiB,
      'MiB',
    );
  }
  if (ok(S.flops)) {
    d.flops = [];
    for (const row of stepRows) {
      const f = S.flops.presets[row.preset];
      if (!f) continue;
      const flops = f.stepFlopsPerClip * row.batch;
      const peak = S.flops.matmul[row.threads]?.gflops;
      const conv = S.flops.matmul[row.threads]?.conv3x3?.gflops;
      const c = flops / (row.cmac.medianWallMs / 1000) / 1e9;
      const p = flops / (row.python.medianMs / 1000) / 1e9;
      d.flops.push({
        preset: row.preset,
        batch: row.batch,
        threads: row.threads,
        contended: d.step?.find((x) => x.preset === row.preset && x.threads === row.threads)?.contended ?? false,
        stepGflop: flops / 1e9,
        cmacGflops: c,
        pythonGflops: p,
        matmulGflops: peak ?? null,
        convGflops: conv ?? null,
        cmacShareOfMatmul: peak ? c / peak : null,
        cmacShareOfConv: conv ? c / conv : null,
      });
    }
  }
  return d;
}

// ---------------------------------------------------------------- markdown
const f = (x, digits = 2) => {
  if (!(typeof x === 'number' && Number.isFinite(x))) return '—';
  const s = x.toFixed(digits);
  return /^-0(\.0+)?$/.test(s) ? s.slice(1) : s; // no "-0"
};
const num = (x) => (typeof x === 'number' && x !== 0 && Math.abs(x) < 1e-3 ? x.toExponential() : String(x));
const fe = (x) => (typeof x === 'number' && Number.isFinite(x) ? x.toExponential(1) : '—');
const yes = (m) => (m === null ? 'n/a' : m ? 'yes' : '**no**');
const table = (head, rows) =>
  [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
const la = (s) => (s && s.loadavgBefore ? `${f(s.loadavgBefore[0])} → ${f(s.loadavgAfter[0])}` : '—');

function sectionState(s) {
  if (!s) return 'not run';
  if (s.skipped) return `skipped: ${s.skipped}`;
  if (s.error) return `failed: ${s.error.split('\n')[0]}`;
  return null;
}

function markdown(r, opts = {}) {
  const S = r.sections || {};
  const d = r.derived || derive(r);
  const m = r.machine || {};
  const v = r.versions || {};
  const py = v.python || {};
  const out = [];
  const p = (...l) => out.push(...l);
  const cores = r.machine ? m.logicalCpus : 2;
  p(
    "# Benchmarks: cmac vs a PyTorch user's equivalent",
    '',
    `<!-- generated by bench/report.js from ${opts.resultsPath || 'bench/results.json'}; edit bench/report.js, not this file -->`,
    '',
    `Generated by \`${r.commands?.bench || 'npm run bench'}\` (${r.mode} run) on ${(r.finishedAt || '').slice(0, 16).replace('T', ' ')} UTC ` +
      `(that invocation: ${f(r.wallSeconds / 60, 1)} min). Raw timings: [\`${opts.resultsLabel || 'bench/results.json'}\`](${opts.resultsPath || '../bench/results.json'}) (machine-specific, git-ignored; regenerate with the commands below). ` +
      'Timed numbers are medians of alternating runs (cmac, PyTorch, PyTorch, cmac, ...) so both sides see the same machine load.',
    '',
  );
  const maxLoad = Math.max(
    0,
    ...Object.values(S)
      .filter((s) => s && s.loadavgBefore)
      .flatMap((s) => [s.loadavgBefore[0], s.loadavgAfter[0]]),
  );
  // The bench itself keeps one or two cores busy (two with 2 threads or 2 decoders).
  if (maxLoad > cores + 1) {
    p(
      `> **Load caveat:** the 1-minute load average reached ${f(maxLoad)} on ${cores} cores during this run, more than the benchmark itself ` +
        'accounts for: other processes shared the CPU. Ratios of alternating runs are fairly robust to that; absolute times and multi-thread rows are not.',
      '',
    );
  }
  p(
    '## Machine and software',
    '',
    table(
      ['', ''],
      [
        ['CPU', `${m.cpuModel} (${(m.cpuFlags || []).join(', ')})`],
        ['cores', `${m.logicalCpus} logical${m.cgroupCpuLimit ? `, cgroup limit ${m.cgroupCpuLimit}` : ''}`],
        ['RAM', `${m.ramGiB} GiB`],
        ['OS', m.os],
        ['Node', v.node],
        ['cmac addon', `${v.cmacAddon} (git ${r.git?.commit ?? '?'}${r.git?.dirty ? ', uncommitted changes' : ''})`],
        [
          'libtorch (cmac)',
          `${v.libtorch}, source: ${v.libtorchSource}${v.debian?.['libtorch-dev'] ? `, Debian libtorch-dev ${v.debian['libtorch-dev']}` : ''}`,
        ],
        [
          'PyTorch (reference)',
          py.torch
            ? `torch ${py.torch}, torchvision ${py.torchvision}, torchaudio ${py.torchaudio}, Python ${py.python}${v.debian?.['python3-torch'] ? ` (Debian python3-torch ${v.debian['python3-torch']}, the same libtorch build)` : ''}`
            : 'not available',
        ],
        ['PyAV / ffmpeg', `${v.debian?.['python3-av'] ?? '?'} / ${v.debian?.ffmpeg ?? '?'}`],
        [
          'BLAS / oneDNN',
          `OpenBLAS ${v.debian?.['libopenblas0-pthread'] ?? v.debian?.libopenblas0 ?? '?'}, oneDNN (libdnnl) ${v.debian?.libdnnl2 ?? '?'}; OPENBLAS_NUM_THREADS=1 on both sides`,
        ],
      ],
    ),
    '',
  );
  const ran = Object.entries(S).filter(([, s]) => s && s.ranAt);
  if (ran.length) {
    p(
      'Sections in this report (each may come from a different invocation with `--only`):',
      '',
      table(
        ['section', 'ran at (UTC)', 'mode', 'seconds', 'load avg (1 min) before → after'],
        ran.map(([k, s]) => [
          k,
          s.ranAt.slice(0, 19).replace('T', ' '),
          `${s.mode ?? '—'}${s.reduced ? ' (reduced: run time budget)' : ''}`,
          s.seconds ? f(s.seconds, 0) : '—',
          s.error ? 'failed' : s.skipped ? 'skipped' : la(s),
        ]),
      ),
      '',
    );
  }
  p(
    '## How to run',
    '',
    '```sh',
    'npm run setup -- --python     # libtorch, ffmpeg, python3-torch/-torchvision/-torchaudio/-av; builds cmac',
    'npm run bench                 # everything: bench/results.json + docs/benchmarks.md (rows stop early past a run-time budget)',
    'npm run bench -- --quick      # fast subset: bench/results.quick.json + bench/results.quick.md',
    'npm run bench -- --only step,data   # some sections; the others are kept from bench/results.json',
    'node bench/report.js          # re-render this page from bench/results.json',
    ...(fs.existsSync(path.join(__dirname, '..', 'lib', 'cli', 'bench.ts'))
      ? ['npx cmac bench --quick        # the same through the CLI (source checkout)']
      : []),
    '```',
    '',
    'Options: `--threads 1,2` (thread counts), `--omp-passive` (OMP_WAIT_POLICY=PASSIVE on both sides, for a machine shared with other jobs), ' +
      "`--out` / `--md` (other output files). Without Python's torch the PyTorch sections are skipped with the fix in their place.",
    '',
    `The PyTorch side is \`${r.commands?.reference || '/usr/bin/python3 bench/reference/cmac_ref.py serve'}\`: ` +
      'a JSON-lines server the driver (bench/run.js) calls step by step. ' +
      (r.commands?.env ? `${r.commands.env}.` : ''),
    '',
  );

  p('## Results against the targets', '');
  if (d.targets.length) {
    p(
      table(
        ['what', 'measured', 'target', 'met'],
        d.targets.map((t) => [
          t.name,
          `${t.unit === 'max error' ? fe(t.value) : f(t.value, t.unit === 'share of step' ? 4 : 2)} ${t.unit}`,
          t.goal,
          yes(t.met),
        ]),
      ),
      '',
    );
  } else p('No section with a target ran.', '');

  // 1. fairness
  p('## 1. Fairness check: same weights, same inputs', '');
  const cs = sectionState(S.check);
  if (cs) p(cs, '');
  else {
    const c = S.check;
    p(
      'cmac builds a model (seed 1) and saves it with `model.save()`; the reference loads that safetensors file ' +
        "(its own reader, no pip packages) into torchvision's R(2+1)D blocks, torchvision's resnet BasicBlock, torchaudio's " +
        'MelSpectrogram and the heads, and both sides get the same batch file. Compared: every loss term in eval mode, ' +
        'the train-mode step (loss terms and gradient norm), the optimiser rule on its own, then every loss term again after one Adam step on each side, ' +
        `and the weights / Adam moments after that step. ${c.threads} thread. Pass = every loss term before the step within ${c.tolerance.toExponential()} and the Adam rule within 8 ulp (ulp of the larger of |w|, lr: the update and recovering the gradient from exp_avg each round a few times).`,
      '',
      `Layout check: visual encoder at paper widths has torchvision \`r2plus1d_18\`'s keys and shapes: ${yes(c.torchvisionLayout.visualMatchesTorchvision)}; ` +
        `audio encoder has torchvision \`resnet18\`'s (1-channel stem): ${yes(c.torchvisionLayout.audioMatchesTorchvisionResnet18)}.`,
      '',
    );
    for (const k of c.cases) {
      const ar = k.stateAfterStep.adamRule;
      p(
        `**${k.preset}, batch ${k.batch}, lr ${k.lr}: ${k.pass ? 'PASS' : 'FAIL'}** — largest loss error ${fe(k.maxErr)} before the step (tolerance ${c.tolerance.toExponential()}); ` +
          (ar
            ? `Adam rule: torch.optim.Adam applied to cmac's starting weights with cmac's own gradient gives cmac's updated weights to ${f(ar.maxUlps, 1)} ulp (${fe(ar.value)} at most, ${ar.at}); `
            : '') +
          `losses after one Adam step on each side agree to ${fe(k.maxErrAfterStep)} (${k.afterStepPass ? 'within' : '**outside**'} ${c.afterStepTolerance.toExponential()}). Error = |diff| / max(1, |value|).`,
        '',
      );
      p(
        table(
          ['quantity', 'cmac', 'PyTorch', '|diff|', 'rel.'],
          k.rows.map((x) => [x.what, x.cmac.toPrecision(9), x.python.toPrecision(9), fe(x.absDiff), fe(x.relDiff)]),
        ),
        '',
      );
      const st = k.stateAfterStep;
      p(
        `After the step: the Adam update (w1 − w0) of all parameters differs by ${fe(st.updateRelL2)} (relative L2), Adam's moments by ` +
          `${fe(st.exp_avgRelL2)} (exp_avg, i.e. the gradients) and ${fe(st.exp_avg_sqRelL2)} (exp_avg_sq); BN running statistics by at most ${fe(st.buffers.value)}. ` +
          `The largest single weight difference is ${fe(st.weights.value)} (${st.weights.at}): Adam's first step moves every weight by about lr·sign(g), ` +
          'so an element whose gradient is at rounding-noise level (e.g. a bias before a softmax, whose true gradient is 0) can move either way on either side. ' +
          `That is why the post-step losses agree less closely than the pre-step ones and are held to ${c.afterStepTolerance.toExponential()}; the Adam-rule row above shows the optimiser itself is the same.`,
        '',
      );
    }
  }

  // 2. step
  p('## 2. Training step', '');
  const ss = sectionState(S.step);
  if (ss) p(ss, '');
  else {
    p(
      'One whole step on both sides: uint8 video → float/255 → ImageNet normalisation, waveform → log-mel, both encoders, heads, ' +
        `the three losses, backward, gradient norm, ${S.step.optim ? `${S.step.optim.name === 'adam' ? 'Adam' : S.step.optim.name} (weight decay ${num(S.step.optim.weightDecay)}, betas ${S.step.optim.beta1}/${S.step.optim.beta2}, eps ${num(S.step.optim.eps)})` : 'the optimiser'}, zero grads (set to none). ` +
        'cmac is timed from JavaScript around `await model.trainStep(batch)` (so it includes copying the batch in); ' +
        '"native" is the step\'s own `timeMs`. PyTorch is timed around the same step in Python. Same starting weights, same batch, same thread count. ' +
        `Load average (1 min) over the section: ${la(S.step)}.`,
      '',
    );
    p(
      table(
        [
          'preset',
          'batch',
          'threads',
          'cmac ms (JS)',
          'cmac native ms',
          'PyTorch ms',
          'ratio',
          'ratio (native)',
          'spread c/p',
          'target',
          'met',
        ],
        S.step.rows.map((x, i) => [
          x.preset,
          x.batch,
          x.threads,
          f(x.cmac.medianWallMs, 1),
          f(x.cmac.medianNativeMs, 1),
          f(x.python.medianMs, 1),
          `**${f(x.ratio, 3)}**`,
          f(x.ratioNative, 3),
          `${f(100 * x.cmac.spread, 1)}% / ${f(100 * x.python.spread, 1)}%`,
          `<= ${TARGETS.step[x.preset]}`,
          d.step?.[i]?.contended ? 'n/a (contended)' : yes(x.ratio <= TARGETS.step[x.preset]),
        ]),
      ),
      '',
    );
    if (S.step.rows[0]?.cmac.cpuMs) {
      p(
        'CPU time and minor page faults per step (process-wide, medians) — on a shared machine CPU time is the steadier measure:',
        '',
        table(
          ['preset', 'threads', 'cmac CPU ms', 'PyTorch CPU ms', 'CPU ratio', 'cmac page faults', 'PyTorch page faults'],
          S.step.rows.map((x) => [
            x.preset,
            x.threads,
            f(x.cmac.medianCpuMs, 0),
            f(x.python.medianCpuMs, 0),
            f(x.cpuRatio, 3),
            f(x.cmac.medianMinorFaults, 0),
            f(x.python.medianMinorFaults, 0),
          ]),
        ),
        '',
      );
    }
    const va = S.step.variants;
    if (va && va.logmel) {
      const sf0 = S.step.sourceFacts || {};
      p(
        `**Op-sequence variants** (timed in the reference, 1 thread, CPU ms): log-mel power of a tiny batch of ${va.logmel.batch} as ` +
          `\`view_as_real(X).pow(2).sum(-1)\`${sf0.logmelViewAsRealSum === false ? " (cmac's formula before this run's code)" : ' (as cmac writes it)'} ${f(va.logmel.cmacFormulaCpuMs, 1)} ms vs torchaudio's \`X.abs().pow(2)\`${sf0.logmelViewAsRealSum === false ? ' (as cmac now writes it)' : ''} ${f(va.logmel.torchaudioCpuMs, 1)} ms ` +
          `(results equal to ${fe(va.logmel.maxRelDiff)}); a whole tiny reference step with torchvision's in-place ReLUs${sf0.encodersReluOutOfPlace === false ? ' (as cmac now does)' : ''} ${f(va.relu.inplaceCpuMs, 0)} ms vs out-of-place ReLUs${sf0.encodersReluOutOfPlace === false ? '' : ' (as cmac)'} ${f(va.relu.outOfPlaceCpuMs, 0)} ms.`,
        '',
      );
    }
    const al = S.step.allocator;
    if (al && !al.error && al.default) {
      p(
        `**Allocator diagnostic** (tiny, batch 32, 1 thread, ${al.rounds} x ${al.steps} steps after ${al.warmup} warm-up in fresh processes, alternating): ` +
          `default glibc malloc ${f(al.default.medianWallMs, 0)} ms wall / ${f(al.default.medianCpuMs, 0)} ms CPU / ${f(al.default.medianMinorFaults, 0)} page faults per step, peak RSS ${f(al.default.peakMiB, 0)} MiB; ` +
          `with \`MALLOC_ARENA_MAX=1\` ${f(al.arena1.medianWallMs, 0)} ms / ${f(al.arena1.medianCpuMs, 0)} ms CPU / ${f(al.arena1.medianMinorFaults, 0)} page faults, peak RSS ${f(al.arena1.peakMiB, 0)} MiB.`,
        '',
      );
    }
    p(
      `Medians of ${S.step.rows.map((x) => x.reps).join('/')} timed steps after ${S.step.rows.map((x) => x.warmup).join('/')} warm-up steps; spread = median absolute deviation / median. ` +
        `Losses track each other (last timed step: ${S.step.rows.map((x) => `${x.preset}/${x.threads}t cmac ${f(x.cmac.loss[x.cmac.loss.length - 1], 3)} vs PyTorch ${f(x.python.loss[x.python.loss.length - 1], 3)}`).join('; ')}).`,
      '',
    );
    if (S.step.rows.some((x) => !x.cmac.allFinite))
      p('**Warning:** some cmac steps reported a non-finite loss (they skip backward and would look faster).', '');
    if (S.step.profiles?.length) {
      p('### Where a step spends its time (PyTorch reference, same kernels as cmac)', '');
      for (const pr of S.step.profiles) {
        const sp = pr.split;
        p(
          `**${pr.preset}, batch ${pr.batch}, ${pr.threads} thread${pr.threads > 1 ? 's' : ''}**: forward + losses ${f(sp.forward * 1000, 0)} ms, backward ${f(sp.backward * 1000, 0)} ms, ` +
            `grad norm + Adam + zero ${f(sp.optimizer * 1000, 0)} ms (one step, timed in parts).`,
          '',
        );
        if (pr.profile) {
          p(
            `Top ops by self CPU time (torch.profiler, one step, ${f(pr.profile.totalSelfMs, 0)} ms of op self time in all):`,
            '',
            table(
              ['op', 'self ms', 'share', 'calls'],
              pr.profile.rows.map((x) => [`\`${x.op}\``, f(x.selfMs, 1), `${f((100 * x.selfMs) / pr.profile.totalSelfMs, 1)}%`, x.calls]),
            ),
            '',
          );
        }
      }
    }
  }

  // 3. boundary
  p('## 3. The JS ↔ native boundary', '');
  const bs = sectionState(S.boundary);
  if (bs) p(bs, '');
  else {
    const b = S.boundary;
    p(
      table(
        ['call', 'µs per call', 'what it measures'],
        [
          ['`getNumThreads()`', f(b.getNumThreads.usPerCall, 3), 'a trivial synchronous native call (JS → C++ → JS)'],
          ['native `memory()`', f(b.nativeMemory.usPerCall, 3), 'synchronous, builds a 3-field object'],
          [
            '`readSafetensors(tiny file)`',
            f(b.readSafetensorsTiny.usPerCall, 1),
            'async round trip: queue to a worker thread, open+read 32 bytes, resolve a Promise',
          ],
          ['`fs.promises.readFile` (same file)', f(b.nodeReadFileTiny.usPerCall, 1), "Node's own async file read, for scale"],
          [
            `\`writeSafetensors\` (tiny batch, ${f(MiB(b.tinyBatchBytes), 1)} MiB, /dev/shm)`,
            f(b.writeSafetensorsTinyBatch.usPerCall, 0),
            'copy a batch-32 tiny batch into tensors + write it',
          ],
          ['`fs.promises.writeFile` (same bytes)', f(b.nodeWriteFileTinyBatch.usPerCall, 0), 'Node writing the same bytes, for scale'],
          ...(b.rejectedStepTinyBatch
            ? [
                [
                  '`trainStep` rejected at once (lr −1), tiny batch 32',
                  `${f(b.rejectedStepTinyBatch.usPerCall, 0)} (min ${f(b.rejectedStepTinyBatch.usMin, 0)})`,
                  'the whole call path without compute: copy the batch in, queue, lock, reject (median)',
                ],
                [
                  '`trainStep` rejected at once (lr −1), 2 tiny clips',
                  `${f(b.rejectedStepTwoClips.usPerCall, 0)} (min ${f(b.rejectedStepTwoClips.usMin, 0)})`,
                  'the same with a 2-clip batch: the fixed cost of an async call',
                ],
              ]
            : []),
        ],
      ),
      '',
    );
    if (d.boundary) {
      p(
        "Per training step, the boundary is everything between the JS call and the native step's own clock: argument checks, " +
          `copying the batch into tensors (${f(MiB(S.boundary.tinyBatchBytes), 1)} MiB for tiny batch 32), the input check (NaN scan of the audio), queueing to the worker thread, ` +
          'building the result and resolving the Promise. Measured as JS wall time − native `timeMs`, median over the timed steps:',
        '',
        table(
          ['threads', 'overhead µs (median)', 'overhead µs (min)', 'tiny step ms', 'share', 'target', 'met'],
          d.boundary.map((x) => [
            x.threads,
            f(x.overheadUs, 0),
            f(x.overheadMinUs, 0),
            f(x.stepMs, 1),
            `${f(100 * x.share, 2)}%`,
            `< ${100 * TARGETS.boundaryShare}%`,
            yes(x.share < TARGETS.boundaryShare),
          ]),
        ),
        '',
        'Under load the median includes waiting for a core (the worker thread handing back, the JS thread waking up); the minimum is closer to the intrinsic cost.',
        '',
      );
    }
  }

  // 4. data
  p('## 4. Data loading', '');
  const ds = sectionState(S.data);
  if (ds) p(ds, '');
  else {
    const D = S.data;
    const sy = D.synth;
    p(
      `A synthetic dataset of ${D.clips} clips (${sy ? `H.264 ${sy.size}x${sy.size} ${sy.fps} fps + AAC ${sy.sampleRate / 1000} kHz, ${sy.seconds} s` : 'H.264 + AAC .mp4'}; written at ${f(D.synthClipsPerSecond, 1)} clips/s by \`synthesize\`). ` +
        `cmac: \`createLoader\` over \`synthSource\` in a fresh Node process, train mode (random clip, crop, flip, colour jitter, audio gain/shift), ${D.decoders} ${D.loaderFacts?.decoder === 'native' ? 'native decoder threads (libav in process)' : 'ffmpeg decoders'}, batch ${D.batchSize}, 2 epochs; ` +
        'the second epoch is the steady state (the first also probes every file). PyTorch: a `torch.utils.data.DataLoader` with 2 workers decoding ' +
        "the **same clip windows of the same files** (the loader's second-epoch clips: start, crop, flip, audio window) with PyAV, " +
        'or with `torchvision.io.read_video`, then crop + bilinear resize to the same size (no colour jitter: less work than cmac). ' +
        `Load average: ${la(S.data)}.`,
      '',
    );
    const rows = [];
    for (const [preset, row] of Object.entries(D.presets)) {
      const e = d.data?.[preset] || {};
      rows.push([
        preset,
        `${row.frames}x${row.size}x${row.size}`,
        row.loaderEpochs.map((x) => f(x.clipsPerSecond, 1)).join(' / '),
        row.python ? f(row.python.pyav.clipsPerSecond, 1) : '—',
        row.python ? f(row.python.read_video.clipsPerSecond, 1) : '—',
        f(e.vsPyav),
        f(e.vsReadVideo),
        e.vsPyav !== undefined ? yes(e.vsPyav >= TARGETS.loaderVsPython) : '—',
      ]);
    }
    p(
      table(
        [
          'clips',
          'frames',
          'cmac loader clips/s (epoch 1 / 2)',
          'PyAV clips/s',
          'read_video clips/s',
          'cmac/PyAV',
          'cmac/read_video',
          `>= ${TARGETS.loaderVsPython}x PyAV`,
        ],
        rows,
      ),
      '',
    );
    const cachedRows = Object.entries(D.presets).filter(([, row]) => row.trainCache);
    if (cachedRows.length) {
      p(
        "With the loader's `trainCache` (train mode: the first epoch decodes each video once into a cache folder, later epochs cut clips, crops, flips and colour jitter in JS), " +
          'same dataset, 3 epochs; steady state = median of epochs 2-3:',
        '',
        table(
          [
            'clips',
            'epoch 1 (fills the cache) clips/s',
            'epochs 2-3 clips/s',
            'PyAV clips/s',
            'cached/PyAV',
            `>= ${TARGETS.loaderVsPython}x PyAV`,
          ],
          cachedRows.map(([preset, row]) => {
            const e = d.data?.[preset] || {};
            return [
              preset,
              f(row.trainCache.fillClipsPerSecond, 1),
              row.trainCache.epochs
                .slice(1)
                .map((x) => f(x.clipsPerSecond, 1))
                .join(' / '),
              row.python ? f(row.python.pyav.clipsPerSecond, 1) : '—',
              f(e.cachedVsPyav),
              e.cachedVsPyav !== undefined ? yes(e.cachedVsPyav >= TARGETS.loaderVsPython) : '—',
            ];
          }),
        ),
        '',
        'PyAV here decodes every clip every epoch, as a plain PyTorch DataLoader does; a cache is a different design, so both loader rows are shown.',
        '',
      );
    }
    if (d.consumption && d.data?.tiny) {
      p(
        'Against what training consumes (tiny batch 32, clips/s = batch / cmac step time):',
        '',
        table(
          [
            'threads',
            'tiny step consumes clips/s',
            'loader (tiny clips) clips/s',
            'loader / step',
            'loader with trainCache clips/s',
            'cached / step',
          ],
          d.consumption.map((c) => [
            c.threads,
            f(c.clipsPerSecond, 1),
            f(d.data.tiny.loader, 1),
            f(d.data.tiny.loader / c.clipsPerSecond),
            f(d.data.tiny.cached, 1),
            d.data.tiny.cached === undefined ? '—' : f(d.data.tiny.cached / c.clipsPerSecond),
          ]),
        ),
        '',
      );
    }
  }

  // 5. inference
  p('## 5. Inference: `embed` throughput', '');
  const is = sectionState(S.inference);
  if (is) p(is, '');
  else {
    p(
      'Each encoder alone (`embed({ video })` / `embed({ audio })`, eval mode, inference mode, results copied back to JS), ' +
        `PyTorch reference the same under \`torch.inference_mode()\`; alternating, medians. Load average: ${la(S.inference)}.`,
      '',
      table(
        [
          'preset',
          'encoder',
          'batch',
          'threads',
          'calls',
          'cmac clips/s',
          'PyTorch clips/s',
          'time ratio cmac/PyTorch',
          'CPU ms c/p',
          'page faults c/p',
        ],
        S.inference.rows.map((x) => {
          const one = S.inference.rows.find((y) => y.preset === x.preset && y.encoder === x.encoder && y.threads < x.threads);
          const contended = one && (x.cmacMedianMs > one.cmacMedianMs || x.pythonMedianMs > one.pythonMedianMs);
          return [
            x.preset,
            x.encoder,
            x.batch,
            x.threads,
            x.reps,
            f(x.cmacClipsPerSecond, 1),
            f(x.pythonClipsPerSecond, 1),
            `${f(x.ratio, 3)}${contended ? ' (contended: a side got slower with more threads)' : ''}`,
            x.cmacCpuMs === undefined ? '—' : `${f(x.cmacCpuMs, 0)} / ${f(x.pythonCpuMs, 0)}`,
            x.cmacMinorFaults === undefined ? '—' : `${f(x.cmacMinorFaults, 0)} / ${f(x.pythonMinorFaults, 0)}`,
          ];
        }),
      ),
      '',
    );
  }

  // 6. memory
  p('## 6. Memory', '');
  const ms = sectionState(S.memory);
  if (ms) p(ms, '');
  else {
    const M = S.memory;
    const e = M.embed.samples;
    p(
      table(
        ['measurement', 'value'],
        [
          [
            `peak RSS, ${M.train.steps} tiny training steps (batch 32, ${M.threads} thread${M.threads > 1 ? 's' : ''}), fresh Node process, glibc malloc defaults${M.train.mallocArenaMax ? ` (MALLOC_ARENA_MAX=${M.train.mallocArenaMax})` : ''}`,
            `${f(MiB(M.train.peak), 0)} MiB (RSS at start ${f(MiB(M.train.rssStart), 0)}, after create ${f(MiB(M.train.rssAfterCreate), 0)}, at end ${f(MiB(M.train.rssEnd), 0)} MiB)`,
          ],
          ...(M.trainArena1
            ? [
                [
                  'the same with `MALLOC_ARENA_MAX=1` (as `cmac train`, npm run demo/bench/ablation and --nproc ranks run)',
                  `${f(MiB(M.trainArena1.peak), 0)} MiB (at end ${f(MiB(M.trainArena1.rssEnd), 0)} MiB)`,
                ],
              ]
            : []),
          ...(M.python
            ? [
                [
                  `peak RSS, the same steps in the PyTorch reference (fresh Python process)`,
                  `${f(MiB(M.python.peak), 0)} MiB (RSS before the steps ${f(MiB(M.python.rssBefore), 0)} MiB)`,
                ],
              ]
            : []),
          [`RSS after ${e[0].calls} embed calls`, `${f(MiB(e[0].rss), 1)} MiB`],
          [`RSS after ${e[e.length - 1].calls} embed calls`, `${f(MiB(e[e.length - 1].rss), 1)} MiB`],
          ['growth / fitted slope', `${f(d.memory.growthMiB, 2)} MiB / ${f(d.memory.slopeBytesPerCall, 1)} bytes per call`],
          ['embed call (batch 1, 16x16 frame + 1024 samples)', `${f(M.embed.usPerCall, 0)} µs`],
          [
            'live models / native bytes / pending ops at the end',
            `${e[e.length - 1].models} / ${e[e.length - 1].bytes} / ${e[e.length - 1].pendingOps}`,
          ],
        ],
      ),
      '',
      `RSS every ${M.embed.every} calls (MiB): ${e.map((x) => f(MiB(x.rss), 1)).join(', ')}.`,
      '',
    );
  }

  // 7. flops
  p('## 7. Achieved GFLOP/s', '');
  const fs_ = sectionState(S.flops);
  if (fs_) p(fs_, '');
  else {
    const F = S.flops;
    p(
      `FLOPs: ${F.method}. Not counted: BatchNorm, ReLU, pooling, the STFT, the losses (all small next to the convolutions).`,
      '',
      table(
        ['preset', 'forward GFLOP per clip', 'of which visual / audio / heads', 'step GFLOP per clip (x3)'],
        Object.entries(F.presets).map(([k, x]) => [
          k,
          f(x.forward / x.batch / 1e9, 2),
          `${f(x.visual / x.batch / 1e9, 2)} / ${f(x.audio / x.batch / 1e9, 2)} / ${f(x.heads / x.batch / 1e9, 3)}`,
          f(x.stepFlopsPerClip / 1e9, 2),
        ]),
      ),
      '',
      `Yardsticks on this CPU, same libtorch, n threads: dense matmul (torch.mm 2048², OpenBLAS with n threads) ${Object.entries(F.matmul)
        .map(([t, x]) => `${f(x.gflops, 1)} GFLOP/s at ${t}`)
        .join(', ')}; ` +
        `a dense 3x3 convolution in oneDNN (${Object.values(F.matmul)[0]?.conv3x3?.shape ?? '—'}) ${Object.entries(F.matmul)
          .map(([t, x]) => `${f(x.conv3x3?.gflops, 1)} GFLOP/s at ${t}`)
          .join(', ')}. ` +
        (F.isa
          ? `Kernels picked on this CPU: OpenBLAS "${F.isa.openblas ?? '?'}", oneDNN "${F.isa.onednn ?? '?'}" (convolution implementation ${F.isa.onednnConv ?? '?'}). `
          : '') +
        "The step's convolutions run in oneDNN, so the oneDNN convolution is the fairer bar when it is the higher one.",
      '',
    );
    if (d.flops?.length) {
      p(
        table(
          [
            'preset',
            'batch',
            'threads',
            'step GFLOP',
            'cmac GFLOP/s',
            'PyTorch GFLOP/s',
            'mm GFLOP/s',
            'conv GFLOP/s',
            'cmac / mm',
            'cmac / conv',
          ],
          d.flops.map((x) => [
            x.preset,
            x.batch,
            `${x.threads}${x.contended ? ' (contended)' : ''}`,
            f(x.stepGflop, 1),
            f(x.cmacGflops, 1),
            f(x.pythonGflops, 1),
            f(x.matmulGflops, 1),
            f(x.convGflops, 1),
            x.cmacShareOfMatmul === null ? '—' : `${f(100 * x.cmacShareOfMatmul, 0)}%`,
            x.cmacShareOfConv === null ? '—' : `${f(100 * x.cmacShareOfConv, 0)}%`,
          ]),
        ),
        '',
      );
    }
  }

  // analysis
  p('## What is ours and what is not', '', ...analysis(r, d), '');
  p(
    '## Fairness rules the harness follows',
    '',
    '- Same architecture and losses: the reference is written from native/core (cmac_model.cpp trainStep, losses.cpp, optim.cpp) and is checked against cmac on the same weights and inputs (section 1) before anything is timed.',
    "- Same starting weights (cmac's, loaded into the reference), same batch (one file both sides read), same optimiser settings (torch.optim.Adam with cmac's betas, eps and weight decay; its default single-tensor path), same thread count, `OPENBLAS_NUM_THREADS=1` on both sides.",
    "- The reference uses what a PyTorch user would: torchvision blocks (in-place ReLU), torchaudio MelSpectrogram, torch.optim.Adam, `zero_grad(set_to_none=True)`; it also computes the gradient norm and reads the four loss values (`.item()`), as cmac's step does.",
    '- cmac is timed from JavaScript, so its numbers include the boundary; both sides alternate (ABBA) after warm-up, and medians are reported.',
    '- Python decode gets the same clip windows of the same files, best of its runs, and does less work (no colour jitter, audio window without the shift margin).',
    '',
  );
  return out.join('\n');
}

/** Why the loader is slower than in-process PyAV, from what the built loader does (data.loaderFacts). */
function loaderWhy(D) {
  const lf = D.loaderFacts || {};
  const parts = [];
  if (lf.processPerGroup)
    parts.push(
      `runs one ffmpeg process per group of ${lf.clipsPerProcess ?? '?'} clips (starting one costs ${f(D.ffmpegStartMs, 0)} ms here before it decodes anything)`,
    );
  if (lf.separateAudioInput)
    parts.push(
      'opens each file twice per clip (a video seek and an audio seek, each with its own demuxer and decoder pre-roll) and builds a filter graph per clip',
    );
  if (lf.probesEachFile) parts.push(`probes every file once (${lf.decoder === 'native' ? 'libavformat' : 'ffprobe'}) in the first epoch`);
  if (lf.decoder === 'native')
    parts.push(
      'decodes with the same filter rules as the ffmpeg CLI (two demuxers per clip: a video and an audio seek, as the CLI path, so both give the same bytes)',
    );
  const inb = D.ffmpegStartInBenchProcess;
  const big =
    inb && D.ffmpegStartMs && inb.ms > 1.3 * D.ffmpegStartMs
      ? ` From a process that holds models (this bench process, RSS ${f(MiB(inb.rss) / 1024, 1)} GiB) starting ffmpeg costs ${f(inb.ms, 0)} ms instead of ${f(D.ffmpegStartMs, 0)}: ` +
        'spawning forks the process and copies its page tables, so a trainer running the loader next to a model pays more per clip group, and more still when its RSS is inflated by the malloc arenas (section 6).'
      : '';
  return (
    (parts.length ? `The loader ${parts.join(', ')}, while PyAV decodes in-process with one open per clip. ` : '') +
    `PyAV and ffmpeg share libavcodec, so the gap is in our loader's design (lib/data), not in the decoder.${big}`
  );
}

/** Plain-language reading of the numbers; every statement is conditioned on the measurement. */
function analysis(r, d) {
  const S = r.sections || {};
  const L = [];
  const rows = ok(S.step) ? S.step.rows : [];
  if (rows.length) {
    for (const [i, x] of rows.entries()) {
      if (d.step?.[i]?.contended) {
        L.push(`- **${x.preset} step, ${x.threads} threads**: contended row (see below), not compared.`);
        continue;
      }
      const over = x.overheadMs;
      const native = x.cmac.medianNativeMs;
      const pyms = x.python.medianMs;
      const gap = x.cmac.medianWallMs - pyms;
      L.push(
        `- **${x.preset} step, ${x.threads} thread${x.threads > 1 ? 's' : ''}**: cmac ${f(x.cmac.medianWallMs, 1)} ms = native ${f(native, 1)} ms + boundary ${f(over, 2)} ms; PyTorch ${f(pyms, 1)} ms. ` +
          (gap <= 0
            ? `cmac is ${f(-gap, 1)} ms (${f((100 * -gap) / pyms, 1)}%) faster.`
            : `cmac is ${f(gap, 1)} ms (${f((100 * gap) / pyms, 1)}%) slower; ${f((100 * Math.min(over, gap)) / gap, 0)}% of that gap is the boundary (ours), the rest is inside the native step.`),
      );
    }
    const v = r.versions || {};
    const same = v.debian?.['libtorch-dev'] && v.debian?.['python3-torch'] && v.debian['libtorch-dev'] === v.debian['python3-torch'];
    L.push(
      `- **Not ours:** cmac runs on libtorch ${v.libtorch ?? '?'} (${v.libtorchSource ?? '?'}${v.debian?.['libtorch-dev'] ? `, Debian libtorch-dev ${v.debian['libtorch-dev']}` : ''}), the reference on torch ${v.python?.torch ?? '?'}` +
        `${v.debian?.['python3-torch'] ? ` (Debian python3-torch ${v.debian['python3-torch']})` : ''}${same ? ': the same build' : ''}, so the convolution, matmul and BatchNorm kernels (oneDNN / BLAS) that take most of a step ` +
        '(profile in section 2) are the same code on both sides. What the reference adds and cmac does not: Python dispatch per op (small next to multi-ms kernels).',
    );
    const va = S.step.variants;
    const r1 = rows.find((x) => x.preset === 'tiny' && x.threads === 1);
    const sf = S.step.sourceFacts || { logmelViewAsRealSum: true, encodersReluOutOfPlace: true, addonAsyncWorker: true };
    if (va && va.logmel && va.relu && (sf.logmelViewAsRealSum || sf.encodersReluOutOfPlace)) {
      const dl = sf.logmelViewAsRealSum ? va.logmel.cmacFormulaCpuMs - va.logmel.torchaudioCpuMs : 0;
      const dr = sf.encodersReluOutOfPlace ? va.relu.outOfPlaceCpuMs - va.relu.inplaceCpuMs : 0;
      const cmpTxt = (x, digits, what, than) =>
        x > 0
          ? `${what} costs ${f(x, digits)} ms more ${than}`
          : `${what} was not slower ${than} in this run (${f(x, digits)} ms, within noise)`;
      const parts = [];
      if (sf.logmelViewAsRealSum) {
        parts.push(
          `${cmpTxt(dl, 1, 'the log-mel power as `view_as_real(X).pow(2).sum(-1)` (native/core/logmel.cpp)', "per tiny batch than torchaudio's `X.abs().pow(2)`")}` +
            `${dl > 0 ? ' (a reduction over a size-2 last dimension is slow in ATen)' : ''}`,
        );
      }
      if (sf.encodersReluOutOfPlace) {
        parts.push(
          cmpTxt(
            dr,
            0,
            'out-of-place ReLU in the residual blocks (native/core r2plus1d.cpp and audio_resnet.cpp call `torch::relu`)',
            "per tiny step than torchvision's in-place ReLU",
          ),
        );
      }
      L.push(
        `- **Ours, op sequence:** ${parts.join('; ')}. ` +
          "Each is a one-line change in native/core (abs().pow(2) is exactly torchaudio's formula; torchvision itself applies in-place ReLU after BatchNorm).",
      );
      const al = S.step.allocator;
      if (r1 && r1.cmac.medianCpuMs !== undefined) {
        const gap = r1.cmac.medianCpuMs - r1.python.medianCpuMs;
        // CPU cost of one page fault, from the allocator diagnostic (same steps with and without arenas)
        const dFaults = al && al.default && al.arena1 ? al.default.medianMinorFaults - al.arena1.medianMinorFaults : 0;
        const perFaultUs = dFaults > 0 ? ((al.default.medianCpuMs - al.arena1.medianCpuMs) * 1000) / dFaults : null;
        const faultMs =
          perFaultUs !== null && perFaultUs > 0 ? ((r1.cmac.medianMinorFaults - r1.python.medianMinorFaults) * perFaultUs) / 1000 : null;
        const parts = [`log-mel formula ${f(dl, 0)} ms`, `out-of-place ReLU ${f(dr, 0)} ms`];
        if (faultMs !== null)
          parts.push(
            `extra page faults ${f(faultMs, 0)} ms (${f(r1.cmac.medianMinorFaults - r1.python.medianMinorFaults, 0)} more per step at ${f(perFaultUs, 2)} µs each, the cost per fault the allocator diagnostic measured)`,
          );
        const sum = dl + dr + (faultMs ?? 0);
        L.push(
          `- **Accounting for the tiny 1-thread gap in CPU time:** cmac ${f(r1.cmac.medianCpuMs, 0)} ms vs PyTorch ${f(r1.python.medianCpuMs, 0)} ms per step, a gap of ${f(gap, 0)} ms. ` +
            `Estimated parts: ${parts.join(' + ')} ≈ ${f(sum, 0)} ms${gap > 0 ? ` (${f((100 * sum) / gap, 0)}% of the gap)` : ' (cmac is not slower here, so there is no gap to account for)'}. ` +
            'What remains is the noise of a shared machine or smaller differences (Adam per tensor with `lerp_`, the NaN scan of the audio, the per-parameter gradient-norm reduction).',
        );
      }
    }
    const al = S.step.allocator;
    if (r1 && r1.cmac.medianMinorFaults !== undefined && !(al && al.default) && sf.addonAsyncWorker) {
      L.push(
        `- A tiny step costs cmac ${f(r1.cmac.medianMinorFaults, 0)} minor page faults against PyTorch's ${f(r1.python.medianMinorFaults, 0)} (fresh zero-filled pages from the kernel, ` +
          "see the allocator diagnostic when it runs: cmac's calls hop between libuv pool threads, each with its own malloc arena).",
      );
    }
    if (al && al.default && al.arena1 && sf.addonAsyncWorker) {
      const gain = 1 - al.arena1.medianCpuMs / al.default.medianCpuMs;
      L.push(
        `- **Allocator (ours):** cmac runs every call on whichever libuv pool thread is free, and glibc gives each thread its own malloc arena, ` +
          "so a step frees its activations into one arena and allocates the next step's fresh from another (page faults: zero-filled pages from the kernel), " +
          `and RSS holds several step-sized arenas. ${r1 ? `In the timed rows a tiny step costs cmac ${f(r1.cmac.medianMinorFaults, 0)} page faults against PyTorch's ${f(r1.python.medianMinorFaults, 0)}. ` : ''}` +
          `With \`MALLOC_ARENA_MAX=1\` the same step needs ${f(al.arena1.medianMinorFaults, 0)} instead of ${f(al.default.medianMinorFaults, 0)} page faults and ${f(100 * gain, 0)}% ${gain >= 0 ? 'less' : 'more'} CPU time, ` +
          `and peak RSS falls from ${f(al.default.peakMiB, 0)} to ${f(al.arena1.peakMiB, 0)} MiB. ` +
          "Fix candidates (native/addon, not done here): run one model's calls on one dedicated thread, or cap arenas (mallopt M_ARENA_MAX) / raise M_MMAP_THRESHOLD and M_TRIM_THRESHOLD at load.",
      );
    }
    const spin = rows
      .filter((x) => x.threads > 1)
      .map((x) => ({ x, one: rows.find((y) => y.preset === x.preset && y.threads === 1) }))
      .filter(({ x, one }) => one && (x.python.medianMs > one.python.medianMs || x.cmac.medianWallMs > one.cmac.medianWallMs));
    for (const { x, one } of spin) {
      const pySlower = x.python.medianMs > one.python.medianMs;
      L.push(
        `- **${x.preset}, ${x.threads} threads: contended row.** With ${x.threads} threads PyTorch took ${f(x.python.medianMs, 0)} ms (1 thread: ${f(one.python.medianMs, 0)}; CPU ${f(x.python.medianCpuMs, 0)} vs ${f(one.python.medianCpuMs, 0)} ms per step) ` +
          `and cmac ${f(x.cmac.medianWallMs, 0)} ms (1 thread: ${f(one.cmac.medianWallMs, 0)}; CPU ${f(x.cmac.medianCpuMs, 0)} vs ${f(one.cmac.medianCpuMs, 0)} ms). More threads should not be slower: other processes held the cores. ` +
          (pySlower && x.python.medianCpuMs > 1.5 * one.python.medianCpuMs && sf.addonAsyncWorker
            ? "PyTorch's OpenMP threads spin at every barrier while a core is taken (its CPU time balloons). cmac suffers less, most likely because its process holds more OpenMP threads than cores " +
              '(a team per libuv pool thread that has run a step), which makes libgomp throttle its spin-waiting. '
            : '') +
          `This row measures contention, not the libraries, and is not counted against the target: rerun on a quiet machine${/PASSIVE/i.test(r.commands?.env || '') ? '' : ', or with `--omp-passive`'}.`,
      );
    }
    const prof = (S.step.profiles || []).filter((x) => x.profile);
    for (const pr of prof) {
      const slow = pr.profile.rows.find((x) => x.op === 'aten::slow_conv3d_forward');
      if (slow) {
        const ks = [...new Set((pr.profile.slowConv3d || []).map((x) => `(${x.weight.slice(2).join(',')})`))];
        L.push(
          `- In the ${pr.preset} profile, \`aten::slow_conv3d_forward\` (${slow.calls} calls, ${f((100 * slow.selfMs) / pr.profile.totalSelfMs, 0)}% of the step) is libtorch's non-oneDNN fallback, ` +
            `which this libtorch picks for some 3-D convolutions${ks.length ? ` (kernels ${ks.join(', ')}: ${(pr.profile.slowConv3d || []).map((x) => `${x.weight[1]}→${x.weight[0]}`).join(', ')} channels)` : ''}; ` +
            'cmac goes through the same dispatch (same libtorch and shapes), so it is not ours, but it is a lead for both sides: a libtorch whose oneDNN path takes those shapes would speed up the forward pass.',
        );
      }
      const top = pr.profile.rows
        .slice(0, 3)
        .map((x) => `\`${x.op}\` ${f((100 * x.selfMs) / pr.profile.totalSelfMs, 0)}%`)
        .join(', ');
      L.push(
        `- In the ${pr.preset} profile the top ops are ${top}: ${pr.profile.rows.slice(0, 3).every((x) => /conv|mkldnn|addmm|mm|bmm|batch_norm|native_batch_norm/.test(x.op)) ? 'libtorch compute kernels, shared by both sides' : 'see the table above'}.`,
      );
    }
  }
  if (ok(S.inference)) {
    const minT = Math.min(...S.inference.rows.map((x) => x.threads));
    const rowsT = S.inference.rows.filter((x) => x.threads === minT);
    const va = ok(S.step) ? S.step.variants : null;
    const txt = rowsT.map((x) => `${x.preset} ${x.encoder} ${f(x.ratio, 2)}`).join(', ');
    const ta = rowsT.find((x) => x.preset === 'tiny' && x.encoder === 'audio');
    let why = '';
    if (ta && ta.ratio > 1.05 && va?.logmel && (S.step.sourceFacts?.logmelViewAsRealSum ?? true)) {
      const gap = ta.cmacMedianMs - ta.pythonMedianMs;
      const dl = va.logmel.cmacFormulaCpuMs - va.logmel.torchaudioCpuMs;
      why =
        ` For the tiny audio encoder the gap is ${f(gap, 0)} ms per batch of ${ta.batch}; the log-mel power formula accounts for about ${f(dl, 0)} ms of it` +
        (ta.cmacMinorFaults !== undefined
          ? ` and cmac took ${f(ta.cmacMinorFaults, 0)} page faults per call against PyTorch's ${f(ta.pythonMinorFaults, 0)} (the allocator effect of section 2)`
          : '') +
        '.';
    }
    L.push(`- Inference at ${minT} thread${minT > 1 ? 's' : ''} (embed time ratio cmac/PyTorch): ${txt}.${why}`);
  }
  if (d.data) {
    const t = d.data.tiny;
    if (t?.vsPyav !== undefined) {
      L.push(
        `- Data: the loader delivers ${f(t.loader, 1)} tiny clips/s against PyAV's ${f(t.pyav, 1)} (${f(t.vsPyav)}x). ` +
          (t.vsPyav < TARGETS.loaderVsPython ? loaderWhy(S.data) : "Our loader's ffmpeg processes keep up with in-process PyAV."),
      );
    }
    if (t?.cachedVsPyav !== undefined) {
      L.push(
        `- With \`trainCache\` the loader delivers ${f(t.cached, 1)} tiny clips/s after the first epoch (${f(t.cachedVsPyav)}x PyAV): decoding once and cutting clips in JS removes the per-clip ffmpeg cost; the first epoch (${f(S.data.presets.tiny.trainCache.fillClipsPerSecond, 1)} clips/s) still pays it.`,
      );
    }
    if (t?.vsStep !== undefined) {
      L.push(
        `- The default loader ${t.vsStep > 1 ? 'outpaces' : 'cannot keep up with'} the tiny training step (${f(t.vsStep)}x of the fastest row's consumption)${t.vsStep > 1 ? '' : ': with 2 cores, decoders and the step compete for the same CPUs, so a run without the cache is data-bound'}` +
          (t.cachedVsStep !== undefined
            ? `; with \`trainCache\` it ${t.cachedVsStep > 1 ? 'outpaces' : 'still trails'} it (${f(t.cachedVsStep)}x) after the first epoch.`
            : '.'),
      );
    }
  }
  if (d.memory && d.memory.pythonTrainPeakMiB) {
    L.push(
      `- Memory: a short tiny run peaks at ${f(d.memory.trainPeakMiB, 0)} MiB RSS in cmac against ${f(d.memory.pythonTrainPeakMiB, 0)} MiB in PyTorch` +
        (d.memory.trainPeakArena1MiB
          ? ` (${f(d.memory.trainPeakArena1MiB, 0)} MiB with one malloc arena: the difference is the per-thread arenas above, ours).`
          : '.'),
    );
  }
  if (d.memory) {
    L.push(
      `- Memory: RSS moved ${f(d.memory.growthMiB, 2)} MiB between ${d.memory.fromCalls} and ${d.memory.toCalls} embed calls (${f(d.memory.slopeBytesPerCall, 1)} bytes per call fitted) — ` +
        (d.memory.growthMiB < TARGETS.memoryGrowthMiB ? 'no growth beyond allocator noise.' : 'a growth worth investigating.'),
    );
  }
  if (d.flops?.length) {
    const pp = d.flops.filter((x) => x.preset === 'paper' && !x.contended);
    for (const x of pp) {
      L.push(
        `- The paper step reaches ${f(x.cmacGflops, 1)} GFLOP/s with ${x.threads} thread${x.threads > 1 ? 's' : ''}: ` +
          `${x.cmacShareOfMatmul === null ? '' : `${f(100 * x.cmacShareOfMatmul, 0)}% of torch.mm's rate`}${x.cmacShareOfConv === null ? '' : ` and ${f(100 * x.cmacShareOfConv, 0)}% of a dense oneDNN 3x3 convolution's`} ` +
          "(the backward pass, (1,3,3) and (3,1,1) 3-D kernels with odd channel counts such as 45/144/230, BatchNorm and memory-bound ops run below that dense-convolution rate; the kernels are libtorch's, on both sides).",
      );
    }
  }
  if (!L.length) L.push('No timing sections ran.');
  return L;
}

function summary(r) {
  const d = r.derived || derive(r);
  const lines = ['', 'cmac benchmark summary (' + r.mode + ')'];
  for (const t of d.targets)
    lines.push(
      `  ${t.met === null ? 'n/a ' : t.met ? 'ok  ' : 'MISS'} ${t.name}: ${t.unit === 'max error' ? fe(t.value) : f(t.value, t.unit === 'share of step' ? 4 : 2)} ${t.unit} (target ${t.goal})`,
    );
  for (const [k, s] of Object.entries(r.sections || {}))
    if (s.error || s.skipped) lines.push(`  ${k}: ${s.error ? 'FAILED ' + s.error.split('\n')[0] : 'skipped ' + s.skipped}`);
  return lines.join('\n');
}

module.exports = { TARGETS, derive, markdown, summary };

if (require.main === module) {
  const inFile = path.resolve(process.argv[2] || path.join(__dirname, 'results.json'));
  const outFile = path.resolve(process.argv[3] || path.join(__dirname, '..', 'docs', 'benchmarks.md'));
  const r = JSON.parse(fs.readFileSync(inFile, 'utf8'));
  r.derived = derive(r);
  fs.writeFileSync(
    outFile,
    markdown(r, {
      resultsPath: path.relative(path.dirname(outFile), inFile),
      resultsLabel: path.relative(path.join(__dirname, '..'), inFile),
    }),
  );
  process.stdout.write(`wrote ${outFile}\n${summary(r)}\n`);
}
