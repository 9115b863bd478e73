// CmacModel: both encoders, the log-mel front end, the heads, the CMAC
// losses and the optimiser behind few coarse calls. One trainStep() is a
// whole step: forward, losses, backward, clipping, optimiser (method.md s3-4).
#pragma once
#include <torch/nn.h>

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "audio_resnet.h"
#include "dist.h"
#include "heads.h"
#include "logmel.h"
#include "module_util.h"
#include "optim.h"
#include "r2plus1d.h"
#include "safetensors.h"

namespace cmac {

// The one lock around torch::manual_seed + weight init: the generator is
// process-wide, and models and classifiers are built on worker threads.
std::mutex& seedInitMutex();
// uint8 video [N, T, H, W, 3] -> float [N, 3, T, H, W] on `device`: /255,
// then ImageNet mean/std (method.md s1). The one copy of those constants.
torch::Tensor normalizeVideo(const torch::Tensor& v, const torch::Device& device);
// "[2, 3]" for error messages.
std::string shapeStr(at::IntArrayRef s);
// Checks a video batch (uint8 [N, T, H, W, 3], 1..1024 frames of 16..4096 px);
// errors name it as `name` ("batch.video", "video").
void checkVideoTensor(const torch::Tensor& v, const std::string& name);

struct LossOptions {
  bool withinModal = true;  // within-modal negatives in L_con
  bool lossV = true;        // L_v: regional attention consistency
  bool lossA = true;        // L_a: frequency attention consistency
  bool targetGrad = false;  // let gradients flow into beta (no stop-gradient)
  double tau = 0.07, tauT = 0.1;
  double lambdaV = 1.0, lambdaA = 1.0;
  int64_t queueSize = 0;  // FIFO queue of past embeddings per modality (0: off)
};

// The five ablation presets of method.md section 5: each sets withinModal,
// lossV and lossA only (pooling is ModelConfig::pooling, not part of a preset).
// lib/config's lossSwitches() holds the same rows for the TS side: the core
// test preset_table_is_method_md_s5_... holds these to docs/method.md's table,
// test/presets-parity.test.ts holds lib/config's to it and to this one.
struct LossPresetRow {
  const char* name;
  bool withinModal, lossV, lossA;
};
const std::vector<LossPresetRow>& lossPresets();  // in method.md's order
LossOptions lossPreset(const std::string& name);  // a row as LossOptions; an unknown name is an error listing them

// Data parallelism across processes (ranks from the environment, dist.h).
struct DistConfig {
  bool enabled = false;          // join the process group named by MASTER_ADDR/PORT, RANK, WORLD_SIZE
  bool gatherNegatives = false;  // L_con negatives from every rank (all_gather with gradient)
  int timeoutSec = 300;
};

struct ModelConfig {
  R2Plus1DOptions visual;
  AudioResNetOptions audio;
  LogMelOptions logmel;
  SpecAugmentOptions specAugment;  // training steps only; default off
  int64_t embedDim = 128;
  // How z is pooled from the regions/bands (method.md s3, s5), independent of
  // the loss preset: "attention" (sum_n alpha_n Vbar_n; the scorers g_v, g_a
  // train through L_con in every preset) or "mean" (plain average; the
  // scorers then get gradient from L_v / L_a only).
  std::string pooling = "attention";
  LossOptions loss;
  OptimOptions optim;
  double clipGradNorm = 0;      // 0: no clipping (the norm is still reported)
  int64_t accumulate = 1;       // optimiser step every k trainStep calls
  std::string device = "cpu";   // cpu | cuda | cuda:N | auto
  std::string amp = "off";      // off | bf16 | fp16 (CUDA only)
  bool cudnnBenchmark = false;  // CUDA: cuDNN benchmark mode (process-wide, set by a CUDA model)
  uint64_t seed = 0;
  DistConfig dist;
};

// Parses a device string; an error names the value and the fix.
torch::Device parseDevice(const std::string& s);

// Inputs as they cross from JS: video uint8 N x T x H x W x 3, audio float N x S.
struct Batch {
  torch::Tensor video, audio;
};

struct StepOptions {
  double lr = 1e-3;
  double lambdaScale = 1.0;  // the lambda ramp of method.md section 4, in [0, 1]
};

struct StepResult {
  double loss = 0, lossCon = 0, lossV = 0, lossA = 0, gradNorm = 0, timeMs = 0, lossScale = 0;
  // In-batch retrieval accuracy read off the L_con logits (both directions;
  // chance is 1/B): what loss.rampStart auto watches (method.md s4).
  double retrievalAcc = 0;
  bool stepped = false, finite = true;
};

struct Embeddings {
  torch::Tensor zV, zA, featV, featA;  // undefined where that modality was not given
};

struct Maps {
  torch::Tensor alphaV, betaV;  // B x H' x W' probabilities
  torch::Tensor alphaA, betaA;  // B x M bands, probabilities
  // The raw maps the localisation protocols threshold (method.md s7):
  // alphaVLogits = g_v(Vbar_n) before the softmax, betaVCos = <z_a, v_n>
  // (bmm(localV, zA)); the audio side alike over the bands.
  torch::Tensor alphaVLogits, betaVCos;  // B x H' x W'
  torch::Tensor alphaALogits, betaACos;  // B x M
};

class CmacNetImpl;

class CmacModel {
 public:
  explicit CmacModel(const ModelConfig& cfg);
  ~CmacModel();

  StepResult trainStep(const Batch& b, const StepOptions& o);
  Embeddings embed(const Batch& b);
  Maps maps(const Batch& b);
  // Every loss term for a batch without updating anything (eval mode).
  StepResult evaluateLoss(const Batch& b, double lambdaScale = 1.0);
  // Per-bin log-mel mean and std (population, floored at 1e-5) of the clips
  // in `audio` (float N x S), before standardisation: nMels float32 each.
  std::pair<torch::Tensor, torch::Tensor> logmelStats(const torch::Tensor& audio);
  // Sets the front end's per-bin standardisation (method.md s1); they are
  // the weights logmel.mean / logmel.std, so checkpoints carry them.
  void setLogmelStats(const torch::Tensor& mean, const torch::Tensor& sd);

  NamedTensors stateDict() const;  // weights, prefixed visual./audio./heads./logmel.
  void loadStateDict(const NamedTensors& sd, bool strict = true);
  NamedTensors optimizerState() const;  // optim.* and queue.*
  void loadOptimizerState(const NamedTensors& st);
  void save(const std::string& path, const std::map<std::string, std::string>& meta = {}) const;
  void load(const std::string& path);

  void setTraining(bool on);
  bool training() const;
  void to(const std::string& device);
  std::string device() const;
  int64_t numParameters() const;
  int64_t stateBytes() const;  // bytes of weights, buffers and optimiser state
  int rank() const { return dist_ ? dist_->rank() : 0; }
  int worldSize() const { return dist_ ? dist_->worldSize() : 1; }
  // True on every rank when any rank passes true (one tiny collective); `flag` alone without dist.
  bool anyRank(bool flag) { return dist_ ? dist_->anyTrue(flag) : flag; }
  const ModelConfig& config() const { return cfg_; }

 private:
  struct Forward;
  struct Terms;
  // augment: SpecAugment on the log-mel (trainStep only, when configured).
  Forward forward(const Batch& b, bool needLocal, bool augment = false);
  // What computeLosses() is for. train (trainStep): the queue's and other
  // ranks' embeddings join the negatives, and only the preset's terms are
  // computed. evaluate (evaluateLoss): in-batch negatives only, and L_v, L_a
  // are computed even where the preset leaves them out of L.
  enum class LossUse { train, evaluate };
  // The one place the losses are wired (method.md s4), for trainStep and
  // evaluateLoss: L = L_con + lambdaScale (lambda_v L_v + lambda_a L_a).
  Terms computeLosses(const Forward& f, double lambdaScale, LossUse use) const;
  // The steps of trainStep (method.md s4), in order; see each definition.
  StepResult fetchScalars(const Terms& t, bool meanOverRanks);  // one host sync for every reported scalar
  void dropWindow();                                            // NaN guard
  void backwardScaled(const torch::Tensor& total);
  void applyGradients(double lr, StepResult& r);  // end of an accumulation window
  void updateQueue(const Forward& f);
  bool fp16Scaling() const;  // fp16 autocast on CUDA: a dynamic loss scale
  torch::Tensor prepVideo(const torch::Tensor& v) const;
  torch::Tensor prepAudio(const torch::Tensor& a) const;
  void checkBatch(const Batch& b, bool needVideo, bool needAudio, int64_t minBatch) const;
  void recount();  // keeps the process-wide byte count in step with this model
  // Loading in two phases, so that a failed load changes nothing: check*()
  // validates everything and returns what to apply; apply*() cannot fail.
  struct PreparedState {
    Optimizer::Prepared optim;
    bool hasMicro = false, hasLossScale = false, hasQueueState = false;
    bool hasAugStep = false;
    int64_t micro = 0, queuePtr = 0, queueFill = 0, augStep = 0;
    double lossScale = 0;
    torch::Tensor queueV, queueA;
  };
  WeightCopies checkStateDict(const NamedTensors& sd, bool strict) const;  // applied by applyCopies()
  PreparedState checkOptimizerState(const NamedTensors& st) const;
  void applyOptimizerState(PreparedState p);

  ModelConfig cfg_;
  std::shared_ptr<CmacNetImpl> net_;
  std::unique_ptr<Optimizer> optim_;
  std::shared_ptr<Dist> dist_;
  torch::Device device_{torch::kCPU};
  torch::Tensor queueV_, queueA_;
  int64_t queuePtr_ = 0, queueFill_ = 0, micro_ = 0;
  int64_t augStep_ = 0;  // trainStep calls that drew SpecAugment masks (seeds them; in the optimiser state)
  double lossScale_ = 65536.0;
  int64_t goodSteps_ = 0;
  int64_t accountedBytes_ = 0;
};

// Process-wide counts for memory(): live models and their state bytes.
struct LiveCounts {
  int64_t models;
  int64_t bytes;
};
LiveCounts liveCounts();

}  // namespace cmac
