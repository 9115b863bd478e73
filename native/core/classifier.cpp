#include "classifier.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <mutex>
#include <sstream>

#include "errors.h"
#include "info.h"
#include "module_util.h"

namespace cmac {

namespace {
void checkVideo(const torch::Tensor& v) {
  if (!v.defined()) typeError("video is required (uint8 [N, T, H, W, 3])");
  checkVideoTensor(v, "video");
  if (v.size(0) < 1) rangeError("video is empty (0 clips)");
}
}  // namespace

class VideoClassifierNet : public torch::nn::Module {
 public:
  VideoClassifierNet(const R2Plus1DOptions& v, int64_t numClasses) {
    visual = register_module("visual", R2Plus1D18(v));
    fc = register_module("fc", torch::nn::Linear(v.planes[3], numClasses));
  }
  R2Plus1D18 visual{nullptr};
  torch::nn::Linear fc{nullptr};
};

VideoClassifier::VideoClassifier(const ModelConfig& cfg, const ClassifierOptions& o) : cfg_(cfg), opt_(o) {
  if (o.numClasses < 2 || o.numClasses > 100000)
    rangeError("numClasses must be an integer in [2, 100000], got " + std::to_string(o.numClasses));
  for (int i = 0; i < 4; ++i)
    if (cfg.visual.planes[i] < 4 || cfg.visual.blocks[i] < 1) rangeError("encoder widths must be >= 4 and depths >= 1");
  device_ = parseDevice(cfg.device);
  applyCudaSettings(device_, cfg.cudnnBenchmark);
  {
    std::lock_guard<std::mutex> lock(seedInitMutex());  // shared with CmacModel: one process-wide generator
    torch::manual_seed(cfg.seed);
    net_ = std::make_shared<VideoClassifierNet>(cfg.visual, o.numClasses);
  }
  net_->to(device_);
  NamedTensors params;
  for (auto& p : net_->named_parameters()) params.emplace_back(p.key(), p.value());
  optim_ = std::make_unique<Optimizer>(std::move(params), o.optim);
}

VideoClassifier::~VideoClassifier() = default;

WeightCopies VideoClassifier::match(const NamedTensors& sd, bool encoderOnly) const {
  std::map<std::string, torch::Tensor> given;
  for (const auto& [k, v] : sd)
    if (!encoderOnly || k.rfind("visual.", 0) == 0) given[k] = v;
  if (encoderOnly && given.empty())
    valueError("the weights have no visual.* entries (" + std::to_string(sd.size()) +
               " tensors). Fix: pass a cmac checkpoint (step-N.safetensors) or a CmacModel's stateDict().");
  NamedTensors targets;
  for (auto& [name, dst] : stateDict())
    if (!encoderOnly || name.rfind("visual.", 0) == 0) targets.emplace_back(name, dst);
  StateMatch m = matchState(
      targets, given, {"in the given weights", "this classifier", [](const std::string& name) {
                         return std::string("build the classifier from the config the checkpoint was trained with") +
                                (name.rfind("fc.", 0) == 0 ? " and the same number of classes." : ".");
                       }});
  const std::string fix = ". Fix: use a checkpoint of the same preset (the config it was trained with).";
  if (!m.missing.empty())
    valueError("the weights lack " + std::to_string(m.missing.size()) + " " + (encoderOnly ? "encoder " : "") +
               "weight(s): " + firstFew(m.missing) + fix);
  if (!m.unexpected.empty())
    valueError("the weights have " + std::to_string(m.unexpected.size()) +
               " unexpected weight(s): " + firstFew(m.unexpected) + fix);
  return std::move(m.copies);
}

void VideoClassifier::loadEncoder(const NamedTensors& sd) { applyCopies(match(sd, true)); }

void VideoClassifier::loadEncoderFile(const std::string& path) { loadEncoder(readSafetensors(path).tensors); }

void VideoClassifier::loadStateDict(const NamedTensors& sd) {
  NamedTensors weights;
  for (const auto& [k, v] : sd)
    if (k.rfind("optim.", 0) != 0) weights.emplace_back(k, v);
  applyCopies(match(weights, false));
}

torch::Tensor VideoClassifier::checkLabels(const torch::Tensor& labels, int64_t n) const {
  if (!labels.defined()) typeError("labels are required (Int32Array or BigInt64Array [N])");
  if (labels.is_floating_point() || labels.scalar_type() == torch::kByte || labels.scalar_type() == torch::kBool)
    typeError("labels must be int32 or int64 (Int32Array or BigInt64Array), got " +
              std::string(c10::toString(labels.scalar_type())));
  if (labels.dim() != 1) rangeError("labels must have shape [N], got " + shapeStr(labels.sizes()));
  if (labels.size(0) != n)
    rangeError("labels has " + std::to_string(labels.size(0)) + " entries but video has " + std::to_string(n) +
               " clips");
  auto y = labels.to(torch::kLong);
  auto bad = ((y < 0) | (y >= opt_.numClasses)).nonzero();
  if (bad.numel() > 0) {
    const int64_t i = bad[0][0].item<int64_t>();
    rangeError("labels[" + std::to_string(i) + "] = " + std::to_string(y[i].item<int64_t>()) + " is outside [0, " +
               std::to_string(opt_.numClasses) +
               "). Fix: class indices must be 0..numClasses-1 (an unlabelled clip has -1).");
  }
  return y.to(device_);
}

torch::Tensor VideoClassifier::forward(const torch::Tensor& video) {
  auto V = net_->visual->forward(normalizeVideo(video, device_));  // N x C x T' x H' x W'
  return net_->fc->forward(V.mean({2, 3, 4}));                     // global average pool -> N x K
}

ClassifierStep VideoClassifier::trainStep(const torch::Tensor& video, const torch::Tensor& labels, double lr) {
  if (!std::isfinite(lr) || lr < 0) rangeError("lr must be a finite number >= 0, got " + std::to_string(lr));
  checkVideo(video);
  auto y = checkLabels(labels, video.size(0));
  applyNumThreads();
  const auto t0 = std::chrono::steady_clock::now();
  net_->train(true);
  auto logits = forward(video);
  auto loss = torch::nn::functional::cross_entropy(logits, y);
  ClassifierStep r;
  {  // loss and accuracy in one transfer (one host sync)
    auto s = torch::stack({loss.detach().to(torch::kDouble), logits.argmax(1).eq(y).to(torch::kDouble).mean()})
                 .to(torch::kCPU);
    r.loss = s[0].item<double>(), r.accuracy = s[1].item<double>();
  }
  r.finite = std::isfinite(r.loss);
  if (r.finite) {
    loss.backward();
    r.gradNorm = gradNorm(net_->parameters());
    r.finite = std::isfinite(r.gradNorm);
    if (r.finite) optim_->step(lr);
  }
  optim_->zeroGrad();
  r.timeMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

torch::Tensor VideoClassifier::predict(const torch::Tensor& video) {
  checkVideo(video);
  applyNumThreads();
  torch::InferenceMode im;
  ModeGuard eval(*net_, false);
  return forward(video).to(torch::kFloat).to(torch::kCPU);
}

NamedTensors VideoClassifier::stateDict() const {
  NamedTensors sd;
  for (const auto& p : net_->named_parameters()) sd.emplace_back(p.key(), p.value());
  for (const auto& b : net_->named_buffers()) sd.emplace_back(b.key(), b.value());
  return sd;
}

void VideoClassifier::save(const std::string& path, const std::map<std::string, std::string>& meta) const {
  auto m = meta;
  m["cmac.kind"] = "video-classifier";
  m["cmac.numClasses"] = std::to_string(opt_.numClasses);
  writeSafetensors(path, stateDict(), m);
}

void VideoClassifier::snapshot() {
  torch::NoGradGuard ng;
  NamedTensors s;
  for (const auto& [k, v] : stateDict()) s.emplace_back(k, v.detach().clone());
  snap_ = std::move(s);
}

void VideoClassifier::restoreSnapshot() {
  if (snap_.empty()) valueError("restoreSnapshot(): no snapshot was taken. Fix: call snapshot() first.");
  loadStateDict(snap_);
}

int64_t VideoClassifier::numParameters() const { return countParameters(*net_); }

int64_t VideoClassifier::stateBytes() const {
  const NamedTensors weights = stateDict(), optim = optim_->state();
  return tensorBytes({&snap_, &weights, &optim});
}

}  // namespace cmac
