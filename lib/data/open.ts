// Opens the data source a path names (training, eval and embed all take one).
import * as fs from 'fs';
import * as path from 'path';
import { folderSource, manifestSource, Source, synthSource, tarSource } from './sources';

/**
 * Opens `spec` as a source: a synthetic dataset folder (manifest.jsonl +
 * classes.json, from `cmac synth`), a .csv/.jsonl manifest, tar shards
 * (x.tar or a brace pattern like shard-{000..009}.tar), or a folder of videos.
 * `allWhenUnsplit`: a manifest whose rows have no `split` field at all gives
 * every row instead of failing (training uses this; eval does not).
 */
export function openSource(spec: string, split?: string, opts: { allWhenUnsplit?: boolean } = {}): Source {
  if (/\.tar$/i.test(spec) || /\{.*\.\..*\}/.test(spec)) return tarSource(spec);
  if (/\.(csv|jsonl)$/i.test(spec)) return manifestSource(spec, split ? { split, ...opts } : {});
  if (!fs.existsSync(spec))
    throw new Error(
      `data source ${spec} does not exist. Fix: pass a folder of videos, a .csv/.jsonl manifest, tar shards, or make synthetic data there (synthesize({ out: ${JSON.stringify(spec)}, clips: 200 }); CLI: cmac synth --out ${spec})`,
    );
  if (fs.statSync(spec).isDirectory()) {
    if (fs.existsSync(path.join(spec, 'manifest.jsonl')) && fs.existsSync(path.join(spec, 'classes.json')))
      return synthSource(spec, split ? { split } : {});
    return folderSource(spec);
  }
  throw new Error(
    `data source ${spec} is a file cmac cannot read as a dataset. Fix: use a .csv/.jsonl manifest, a .tar shard or a folder.`,
  );
}
