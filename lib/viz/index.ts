// Pictures of what a model attends to (docs/evaluation.md): a PNG encoder,
// colour maps and overlays, log-mel spectrograms with frequency attention,
// PCA scatters, and the evaluation sections of report.html.
export { encodePng, decodePng, crc32 } from './png';
export type { RgbImage } from './png';
export {
  colormap,
  blank,
  resize,
  heatmap,
  overlay,
  drawBox,
  hstack,
  vstack,
  paste,
  frameImage,
  textSize,
  drawText,
  titled,
  colourBar,
} from './image';
export type { ColormapName, OverlayOptions, ColourBarOptions } from './image';
export { melFilterbank } from '../audio/mel';
export { fft, logMel, spectrogramImage, frequencyPicture, frequencyTimeline } from './spectrogram';
export type { LogMelOptions, FrequencyPictureOptions, FrequencyTimelineOptions } from './spectrogram';
export { pca, scatterSvg, classColour } from './scatter';
export { evaluationSections, metricsHtml, localizationPanel } from './report';
export type { EvaluationVisuals } from './report';
