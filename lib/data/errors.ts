// Reasons a sample can be skipped, and the error type that carries one.

/**
 * Why a sample was skipped. Each bad file is counted under exactly one reason:
 * - `missing_file`: the path does not exist (or cannot be read)
 * - `empty_file`: zero bytes
 * - `probe_failed`: ffprobe cannot read it (garbage, unknown container)
 * - `truncated`: the container or its data ends early (moov missing in an
 *   ftyp-headed file, or fewer decoded frames than the clip needs)
 * - `unsupported_codec`: a stream whose codec ffmpeg cannot decode
 * - `no_video`: no video stream (or a tar sample without a video member)
 * - `no_audio`: no audio stream, with `missingAudio: 'skip'`
 * - `too_short`: shorter than one video clip (or than the manifest window)
 * - `decode_failed`: ffmpeg exited with an error while decoding the clip
 * - `timeout`: a decoder process ran past its time limit and was killed
 */
export type SkipReason =
  | 'missing_file'
  | 'empty_file'
  | 'probe_failed'
  | 'truncated'
  | 'unsupported_codec'
  | 'no_video'
  | 'no_audio'
  | 'too_short'
  | 'decode_failed'
  | 'timeout';

/** Every {@link SkipReason}, in a stable order (for summaries). */
export const skipReasons: readonly SkipReason[] = [
  'missing_file',
  'empty_file',
  'probe_failed',
  'truncated',
  'unsupported_codec',
  'no_video',
  'no_audio',
  'too_short',
  'decode_failed',
  'timeout',
];

/** A sample-level failure: the loader counts it under `reason` and moves on. */
export class DataError extends Error {
  /** Stable; `reason` says which kind. */
  readonly code = 'CMAC_DATA';
  readonly reason: SkipReason;
  readonly file: string;

  constructor(reason: SkipReason, file: string, detail: string) {
    super(`${file}: ${reason}: ${detail}`);
    this.name = 'DataError';
    this.reason = reason;
    this.file = file;
  }
}

/**
 * An epoch read from its start cannot give a single batch: fewer clips than
 * `batchSize` with `dropLast` (each following epoch would be empty as well).
 * `clips` is the count of clips decoded fine in that epoch (`detail` says
 * what was skipped), or (`listed` true, thrown before decoding) the count
 * listed, an upper bound of it.
 */
export class TooFewClipsError extends Error {
  readonly code = 'CMAC_TOO_FEW_CLIPS';
  constructor(
    readonly source: string,
    readonly clips: number,
    readonly listed: boolean,
    readonly batchSize: number,
    readonly where = '',
    readonly detail = '',
  ) {
    super(
      `cmac: ${source}${where} has ${listed ? `${clips} clip(s), so at most ${clips}` : clips} usable clip(s)${detail ? ` (${detail})` : ''}, fewer than batchSize ${batchSize}, ` +
        'and dropLast drops the incomplete batch, so no batch can be made. Fix: lower batchSize, or set dropLast: false',
    );
    this.name = 'TooFewClipsError';
  }
}
