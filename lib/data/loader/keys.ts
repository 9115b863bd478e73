// Cache keys of a sample's bytes: a clip (eval clip cache) and a whole video
// (train cache). A changed file (size or mtime) or tar member gets new keys.
import * as fs from 'fs';
import type { ClipGeometry } from '../augment';
import { cacheKey } from '../cache';
import type { SampleRef } from '../sources';
import type { TrainCacheSettings } from './options';
import type { Unit } from './types';

/** What identifies a sample's bytes: size and mtime of a file, or its tar member. */
function identOf(ref: SampleRef): unknown {
  let ident: unknown = ref.extra?.member ?? null;
  if (ref.path) {
    try {
      const st = fs.statSync(ref.path);
      ident = [st.size, st.mtimeMs];
    } catch {
      ident = null;
    }
  }
  return ident;
}

/** Clip-cache key: the sample, its window, the clip number among clipsPerVideo, the geometry and the audio policy. */
export function clipKey(u: Unit, g: ClipGeometry, o: { clipsPerVideo: number; missingAudio: string }): string {
  const ref = u.ref;
  return cacheKey(['clip-v1', ref.id, identOf(ref), ref.start ?? null, ref.end ?? null, u.clip, o.clipsPerVideo, g, o.missingAudio]);
}

/** Train-cache key of a video: its identity and what the cache holds of it (frame rate, audio rate, working size, cap). */
export function videoKey(ref: SampleRef, g: ClipGeometry, tc: Pick<TrainCacheSettings, 'scale' | 'maxSeconds'>): string {
  return cacheKey(['video-v1', ref.id, identOf(ref), g.fps, g.sampleRate, Math.ceil(g.size * tc.scale), tc.maxSeconds]);
}
