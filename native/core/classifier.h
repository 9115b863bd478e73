// VideoClassifier: supervised finetuning of the visual encoder (method.md
// section 7, "finetune mode"). The R(2+1)D encoder of a ModelConfig, started
// from a trained cmac model's visual.* weights, global average pooling of its
// last map over T' x H' x W' (torchvision's r2plus1d_18 avgpool) and a Linear
// head `fc` to K classes, trained end to end with cross-entropy by its own
// optimiser. Keys are visual.* and fc.weight / fc.bias: with the "visual."
// prefix stripped, encoder plus head load into torchvision's r2plus1d_18 with
// fc = Linear(C, K).
// Computes in fp32 on the config's device (amp is not used).
#pragma once
#include <torch/nn.h>

#include <map>
#include <memory>
#include <string>

#include "cmac_model.h"
#include "module_util.h"
#include "optim.h"
#include "safetensors.h"

namespace cmac {

struct ClassifierOptions {
  int64_t numClasses = 2;  // K, in [2, 100000]
  // The classifier's own optimiser (the ModelConfig's optim is not used):
  // SGD with momentum 0.9 and weight decay 1e-4 unless told otherwise. The
  // addon's createClassifier passes config.optim here, so from JS the default
  // is that config's (Adam, weight decay 1e-5, unless given).
  OptimOptions optim = [] {
    OptimOptions o;
    o.name = "sgd";
    o.momentum = 0.9;
    o.weightDecay = 1e-4;
    return o;
  }();
};

struct ClassifierStep {
  double loss = 0;      // mean cross-entropy of the batch (before the update)
  double accuracy = 0;  // share of the batch whose argmax logit is the label (train-mode outputs)
  double gradNorm = 0;
  double timeMs = 0;
  bool finite = true;  // false: non-finite loss or gradients, the step was skipped
};

class VideoClassifierNet;

class VideoClassifier {
 public:
  // Encoder of cfg.visual (initialised from cfg.seed) on cfg.device, and a fresh head.
  VideoClassifier(const ModelConfig& cfg, const ClassifierOptions& o);
  ~VideoClassifier();

  // Copies the encoder weights from a cmac state dict: the visual.* entries of
  // a CmacModel's stateDict() or of a checkpoint's tensors (other prefixes are
  // ignored; fc.* too). Every encoder weight must be there with its shape;
  // nothing changes on error.
  void loadEncoder(const NamedTensors& sd);
  void loadEncoder(const CmacModel& m) { loadEncoder(m.stateDict()); }
  void loadEncoderFile(const std::string& path);  // a safetensors checkpoint

  // video uint8 [N, T, H, W, 3], labels int32/int64 [N] in [0, K): one SGD
  // step on the mean cross-entropy, BatchNorm in training mode.
  ClassifierStep trainStep(const torch::Tensor& video, const torch::Tensor& labels, double lr);
  // Logits [N, K] (fp32, on the CPU), eval mode, inference only.
  torch::Tensor predict(const torch::Tensor& video);

  NamedTensors stateDict() const;              // visual.*, fc.weight, fc.bias (live tensors)
  void loadStateDict(const NamedTensors& sd);  // every key of stateDict(), nothing else; all or nothing
  void save(const std::string& path, const std::map<std::string, std::string>& meta = {}) const;
  // Keeps a copy of the weights in memory / puts it back (e.g. the best epoch on validation).
  void snapshot();
  void restoreSnapshot();  // throws when no snapshot was taken
  bool hasSnapshot() const { return !snap_.empty(); }

  int64_t numClasses() const { return opt_.numClasses; }
  std::string device() const { return device_.str(); }
  int64_t numParameters() const;
  int64_t stateBytes() const;  // weights, buffers, optimiser state and the snapshot
  int64_t steps() const { return optim_->steps(); }

 private:
  torch::Tensor forward(const torch::Tensor& video);
  torch::Tensor checkLabels(const torch::Tensor& labels, int64_t n) const;
  // Checks the given weights against this classifier's (all, or the encoder's
  // only) and returns what to copy; module_util.h's matchState() with its wording.
  WeightCopies match(const NamedTensors& sd, bool encoderOnly) const;

  ModelConfig cfg_;
  ClassifierOptions opt_;
  torch::Device device_{torch::kCPU};
  std::shared_ptr<VideoClassifierNet> net_;
  std::unique_ptr<Optimizer> optim_;
  NamedTensors snap_;
};

}  // namespace cmac
