#include "classifier.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <mutex>
#include <set>
#include <sstream>

#include "errors.h"
#include "info.h"

namespace cmac {

namespace {
std::string firstFew(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 5; ++i) s += (i ? ", " : "") + v[i];
  return s + (v.size() > 5 ? ", ... (" + std::to_string(v.size()) + " in all)" : "");
}

void checkVideo(const torch::Tensor& v) {
  if (!v.defined()) typeError("video is required (uint8 [N, T, H, W, 3])");
  checkVideoTensor(v, "video");
  if (v.size(0) < 1) rangeError("video is empty (0 clips)");
}

// Eval mode for the scope, then the previous mode again.
struct EvalScope {
  torch::nn::Module& m;
  bool was;
  explicit EvalScope(torch::nn::Module& m_) : m(m_), was(m_.is_training()) { m.eval(); }
  ~EvalScope() { m.train(was); }
};
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

VideoClassifier::Copies VideoClassifier::match(const NamedTensors& sd, bool encoderOnly) const {
  std::map<std::string, torch::Tensor> given;
  for (const auto& [k, v] : sd)
    if (!encoderOnly || k.rfind("visual.", 0) == 0) given[k] = v;
  if (encoderOnly && given.empty())
    valueError("the weights have no visual.* entries (" + std::to_string(sd.size()) +
               " tensors). Fix: pass a cmac checkpoint (step-N.safetensors) or a CmacModel's stateDict().");
  Copies copies;
  std::vector<std::string> missing, unexpected;
  std::set<std::string> used;
  for (auto& [name, dst] : stateDict()) {
    if (encoderOnly && name.rfind("visual.", 0) != 0) continue;
    auto it = given.find(name);
    if (it == given.end()) { missing.push_back(name); continue; }
    used.insert(name);
    if (!it->second.sizes().equals(dst.sizes()))
      valueError("weight '" + name + "' has shape " + shapeStr(it->second.sizes()) + " in the given weights but " +
                 shapeStr(dst.sizes()) + " in this classifier. Fix: build the classifier from the config the checkpoint was trained with" +
                 (name.rfind("fc.", 0) == 0 ? " and the same number of classes." : "."));
    if (!it->second.is_floating_point() && dst.is_floating_point())
      typeError("weight '" + name + "' is " + std::string(c10::toString(it->second.scalar_type())) + ", expected a float tensor");
    copies.emplace_back(dst, it->second);
  }
  for (const auto& [k, v] : given)
    if (!used.count(k)) unexpected.push_back(k);
  if (!missing.empty())
    valueError("the weights lack " + std::to_string(missing.size()) + " " + (encoderOnly ? "encoder " : "") + "weight(s): " +
               firstFew(missing) + ". Fix: use a checkpoint of the same preset (the config it was trained with).");
  if (!unexpected.empty())
    valueError("the weights have " + std::to_string(unexpected.size()) + " unexpected weight(s): " + firstFew(unexpected) +
               ". Fix: use a checkpoint of the same preset (the config it was trained with).");
  return copies;
}

void VideoClassifier::loadEncoder(const NamedTensors& sd) {
  Copies c = match(sd, true);
  torch::NoGradGuard ng;
  for (const auto& [dst, src] : c) dst.copy_(src.to(dst.dtype()));
}

void VideoClassifier::loadEncoderFile(const std::string& path) { loadEncoder(readSafetensors(path).tensors); }

void VideoClassifier::loadStateDict(const NamedTensors& sd) {
  NamedTensors weights;
  for (const auto& [k, v] : sd)
    if (k.rfind("optim.", 0) != 0) weights.emplace_back(k, v);
  Copies c = match(weights, false);
  torch::NoGradGuard ng;
  for (const auto& [dst, src] : c) dst.copy_(src.to(dst.dtype()));
}

torch::Tensor VideoClassifier::checkLabels(const torch::Tensor& labels, int64_t n) const {
  if (!labels.defined()) typeError("labels are required (Int32Array or BigInt64Array [N])");
  if (labels.is_floating_point() || labels.scalar_type() == torch::kByte || labels.scalar_type() == torch::kBool)
    typeError("labels must be int32 or int64 (Int32Array or BigInt64Array), got " + std::string(c10::toString(labels.scalar_type())));
  if (labels.dim() != 1) rangeError("labels must have shape [N], got " + shapeStr(labels.sizes()));
  if (labels.size(0) != n)
    rangeError("labels has " + std::to_string(labels.size(0)) + " entries but video has " + std::to_string(n) + " clips");
  auto y = labels.to(torch::kLong);
  auto bad = ((y < 0) | (y >= opt_.numClasses)).nonzero();
  if (bad.numel() > 0) {
    const int64_t i = bad[0][0].item<int64_t>();
    rangeError("labels[" + std::to_string(i) + "] = " + std::to_string(y[i].item<int64_t>()) + " is outside [0, " +
               std::to_string(opt_.numClasses) + "). Fix: class indices must be 0..numClasses-1 (an unlabelled clip has -1).");
  }
  return y.to(device_);
}

torch::Tensor VideoClassifier::forward(const torch::Tensor& video) {
  auto V = net_->visual->forward(normalizeVideo(video, device_));  // N x C x T' x H' x W'
  return net_->fc->forward(V.mean({2, 3, 4}));     // global average pool -> N x K
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
  r.loss = loss.item<double>();
  r.accuracy = logits.argmax(1).eq(y).to(torch::kDouble).mean().item<double>();
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
  EvalScope ev(*net_);
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

int64_t VideoClassifier::numParameters() const {
  int64_t n = 0;
  for (const auto& p : net_->parameters()) n += p.numel();
  return n;
}

int64_t VideoClassifier::stateBytes() const {
  int64_t n = 0;
  for (const NamedTensors& part : {snap_, stateDict(), optim_->state()})
    for (const auto& [k, t] : part) n += t.numel() * t.element_size();
  return n;
}

}  // namespace cmac
