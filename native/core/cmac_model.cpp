#include "cmac_model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <optional>
#include <sstream>

#include "errors.h"
#include "info.h"
#include "losses.h"
#include "module_util.h"

namespace cmac {

namespace {
std::atomic<int64_t> gLiveModels{0}, gLiveBytes{0};

const float kMean[3] = {0.485f, 0.456f, 0.406f};  // ImageNet, method.md s1
const float kStd[3] = {0.229f, 0.224f, 0.225f};

// CUDA autocast switch; the API moved to per-device calls in libtorch 2.4.
void setCudaAutocast(bool on, at::ScalarType dt) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCUDA, on);
  if (on) at::autocast::set_autocast_dtype(at::kCUDA, dt);
#else
  at::autocast::set_enabled(on);
  if (on) at::autocast::set_autocast_gpu_dtype(dt);
#endif
}

// Autocast on CUDA for the encoders; the loss math runs in fp32 outside it.
struct AutocastGuard {
  bool on = false;
  at::ScalarType dt = at::kBFloat16;
  AutocastGuard(const torch::Device& d, const std::string& amp) {
    if (!d.is_cuda() || amp == "off") return;
    on = true;
    dt = amp == "bf16" ? at::kBFloat16 : at::kHalf;
    setCudaAutocast(true, dt);
  }
  void pause() {
    if (on) setCudaAutocast(false, dt);
  }
  void resume() {
    if (on) setCudaAutocast(true, dt);
  }
  ~AutocastGuard() {
    if (!on) return;
    setCudaAutocast(false, dt);
    at::autocast::clear_cache();
  }
};
}  // namespace

class CmacNetImpl : public torch::nn::Module {
 public:
  explicit CmacNetImpl(const ModelConfig& c) {
    visual = register_module("visual", R2Plus1D18(c.visual));
    audio = register_module("audio", AudioResNet18(c.audio));
    heads = register_module("heads", Heads(c.visual.planes[3], c.audio.planes[3], c.embedDim));
    logmel = register_module("logmel", LogMel(c.logmel));
  }
  R2Plus1D18 visual{nullptr};
  AudioResNet18 audio{nullptr};
  Heads heads{nullptr};
  LogMel logmel{nullptr};
};

const std::vector<LossPresetRow>& lossPresets() {
  static const std::vector<LossPresetRow> rows = {
      // name            withinModal lossV  lossA
      {"xmodal", false, false, false}, {"xmodal+within", true, false, false},
      {"cmac-v", true, true, false},   {"cmac-a", true, false, true},
      {"cmac", true, true, true},
  };
  return rows;
}

LossOptions lossPreset(const std::string& name) {
  std::string names;
  for (const auto& row : lossPresets()) {
    if (name == row.name) {
      LossOptions o;
      o.withinModal = row.withinModal, o.lossV = row.lossV, o.lossA = row.lossA;
      return o;
    }
    names += (names.empty() ? "" : ", ") + std::string(row.name);
  }
  valueError("loss preset must be one of " + names + "; got '" + name + "'");
}

torch::Device parseDevice(const std::string& s) {
  if (s == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (s == "cpu") return torch::kCPU;
  if (s == "cuda" || s.rfind("cuda:", 0) == 0) {
    int idx = 0;
    if (s.size() > 5) {
      const std::string n = s.substr(5);
      if (n.empty() || n.size() > 3 || n.find_first_not_of("0123456789") != std::string::npos)
        rangeError("device '" + s + "' is not valid. Fix: use cpu, cuda, cuda:N or auto.");
      idx = std::stoi(n);
    }
    if (!torch::cuda::is_available())
      rangeError("device '" + s +
                 "' requested but CUDA is not available in this process (cmac info shows the build). "
                 "Fix: use device 'cpu' or 'auto', or build cmac against a CUDA libtorch.");
    if (idx >= static_cast<int>(torch::cuda::device_count()))
      rangeError("device '" + s + "' does not exist: " + std::to_string(torch::cuda::device_count()) +
                 " CUDA device(s).");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(idx));
  }
  rangeError("device '" + s + "' is not valid. Fix: use cpu, cuda, cuda:N or auto.");
}

struct CmacModel::Forward {
  torch::Tensor zV, zA, featV, featA;  // B x D, B x C (fp32)
  torch::Tensor logAlphaV, logAlphaA;  // B x N, B x M
  torch::Tensor scoreV, scoreA;        // the scorers' logits before the softmax, B x N, B x M
  torch::Tensor localV, localA;        // B x N x D, B x M x D (normalised)
  int64_t mapH = 0, mapW = 0;
  // The cross-modally guided targets of method.md s4, as log-probabilities:
  // beta_v from the AUDIO embedding over the visual regions, beta_a from the
  // VISUAL embedding over the frequency bands.
  torch::Tensor logBetaV(double tauT) const { return guidedTargetLogits(zA, localV, tauT); }
  torch::Tensor logBetaA(double tauT) const { return guidedTargetLogits(zV, localA, tauT); }
  // The cosine maps under those softmaxes: <z_a, v_n> and <z_v, a_m>.
  torch::Tensor cosV() const { return torch::bmm(localV, zA.unsqueeze(2)).squeeze(2); }
  torch::Tensor cosA() const { return torch::bmm(localA, zV.unsqueeze(2)).squeeze(2); }
};

struct CmacModel::Terms {
  torch::Tensor total, con, v, a, acc;  // 0-dim on the device; v/a undefined where not computed
};

CmacModel::CmacModel(const ModelConfig& cfg) : cfg_(cfg) {
  if (cfg_.embedDim < 1 || cfg_.embedDim > 65536) rangeError("model.embedDim must be in [1, 65536]");
  if (cfg_.accumulate < 1) rangeError("optim.accumulate must be >= 1");
  if (cfg_.loss.tau <= 0 || cfg_.loss.tauT <= 0) rangeError("loss.tau and loss.tauT must be > 0");
  if (cfg_.loss.queueSize < 0) rangeError("loss.queueSize must be >= 0");
  if (cfg_.pooling != "attention" && cfg_.pooling != "mean")
    rangeError("pooling must be attention or mean; got '" + cfg_.pooling + "'");
  if (cfg_.amp != "off" && cfg_.amp != "bf16" && cfg_.amp != "fp16")
    rangeError("amp must be off, bf16 or fp16; got '" + cfg_.amp + "'");
  for (int i = 0; i < 4; ++i)
    if (cfg_.visual.planes[i] < 4 || cfg_.audio.planes[i] < 4 || cfg_.visual.blocks[i] < 1 || cfg_.audio.blocks[i] < 1)
      rangeError("encoder widths must be >= 4 and depths >= 1");
  if (cfg_.dist.enabled) {
    DistOptions d = distOptionsFromEnv(cfg_.dist.timeoutSec);
    // NCCL: each rank drives the GPU of its LOCAL_RANK.
    if ((cfg_.device == "cuda" || cfg_.device == "auto") && torch::cuda::is_available())
      cfg_.device = "cuda:" + std::to_string(d.localRank);
    d.cuda = cfg_.device.rfind("cuda", 0) == 0;
    dist_ = std::make_shared<Dist>(d);
  }
  device_ = parseDevice(cfg_.device);
  applyCudaSettings(device_, cfg_.cudnnBenchmark);
  {
    std::lock_guard<std::mutex> lock(seedInitMutex());
    torch::manual_seed(cfg_.seed);
    net_ = std::make_shared<CmacNetImpl>(cfg_);
  }
  net_->to(device_);
  if (dist_ && dist_->worldSize() > 1) {  // every rank starts from rank 0's weights
    std::vector<torch::Tensor> all;
    for (auto& p : net_->parameters()) all.push_back(p.data());
    for (auto& b : net_->buffers()) all.push_back(b);
    dist_->broadcast(all, 0);
  }
  NamedTensors params;
  for (auto& p : net_->named_parameters()) params.emplace_back(p.key(), p.value());
  optim_ = std::make_unique<Optimizer>(std::move(params), cfg_.optim);
  if (cfg_.loss.queueSize > 0) {
    queueV_ = torch::zeros({cfg_.loss.queueSize, cfg_.embedDim}, torch::TensorOptions().device(device_));
    queueA_ = torch::zeros_like(queueV_);
  }
  ++gLiveModels;
  recount();
}

CmacModel::~CmacModel() {
  --gLiveModels;
  gLiveBytes -= accountedBytes_;
}

void CmacModel::recount() {
  const int64_t now = stateBytes();
  gLiveBytes += now - accountedBytes_;
  accountedBytes_ = now;
}

void CmacModel::checkBatch(const Batch& b, bool needVideo, bool needAudio, int64_t minBatch) const {
  int64_t n = -1;
  if (needVideo && !b.video.defined()) typeError("batch.video is required for this call");
  if (needAudio && !b.audio.defined()) typeError("batch.audio is required for this call");
  if (!b.video.defined() && !b.audio.defined()) typeError("batch needs video and/or audio");
  if (b.video.defined()) {
    checkVideoTensor(b.video, "batch.video");
    n = b.video.size(0);
  }
  if (b.audio.defined()) {
    const auto& a = b.audio;
    if (a.scalar_type() != torch::kFloat)
      typeError("batch.audio must be float32 (Float32Array), got " + std::string(c10::toString(a.scalar_type())));
    if (a.dim() != 2) rangeError("batch.audio must have shape [N, samples], got " + shapeStr(a.sizes()));
    if (a.size(1) < cfg_.logmel.nFft || a.size(1) > 600 * cfg_.logmel.sampleRate)
      rangeError("batch.audio needs between " + std::to_string(cfg_.logmel.nFft) + " and " +
                 std::to_string(600 * cfg_.logmel.sampleRate) + " samples per clip, got " + std::to_string(a.size(1)));
    if (a.numel() > 0 && !torch::isfinite(a).all().item<bool>())
      rangeError("batch.audio contains NaN or Inf. Fix: check the decoder output or drop the clip.");
    if (n >= 0 && a.size(0) != n)
      rangeError("batch.video has " + std::to_string(n) + " clips but batch.audio has " + std::to_string(a.size(0)));
    n = a.size(0);
  }
  if (n < 1) rangeError("batch is empty (0 clips)");
  if (n < minBatch)
    rangeError("batch has " + std::to_string(n) + " clip(s); training needs at least " + std::to_string(minBatch) +
               " (the contrastive loss needs negatives). Fix: raise the batch size.");
}

std::mutex& seedInitMutex() {
  static std::mutex m;
  return m;
}

torch::Tensor normalizeVideo(const torch::Tensor& v, const torch::Device& device) {
  auto x = toDevice(v, device).permute({0, 4, 1, 2, 3}).to(torch::kFloat).div_(255.0);
  auto mean =
      torch::tensor({kMean[0], kMean[1], kMean[2]}, torch::TensorOptions().device(device)).view({1, 3, 1, 1, 1});
  auto std = torch::tensor({kStd[0], kStd[1], kStd[2]}, torch::TensorOptions().device(device)).view({1, 3, 1, 1, 1});
  return ((x - mean) / std).contiguous();
}

torch::Tensor CmacModel::prepVideo(const torch::Tensor& v) const { return normalizeVideo(v, device_); }

std::string shapeStr(at::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

void checkVideoTensor(const torch::Tensor& v, const std::string& name) {
  if (v.scalar_type() != torch::kByte)
    typeError(name + " must be uint8 (Uint8Array), got " + std::string(c10::toString(v.scalar_type())));
  if (v.dim() != 5 || v.size(4) != 3) rangeError(name + " must have shape [N, T, H, W, 3], got " + shapeStr(v.sizes()));
  if (v.size(1) < 1 || v.size(2) < 16 || v.size(3) < 16 || v.size(2) > 4096 || v.size(3) > 4096 || v.size(1) > 1024)
    rangeError(name + " frames must be 1..1024 and H, W in 16..4096, got " + shapeStr(v.sizes()));
}

torch::Tensor CmacModel::prepAudio(const torch::Tensor& a) const { return net_->logmel->forward(toDevice(a, device_)); }

CmacModel::Forward CmacModel::forward(const Batch& b, bool needLocal, bool augment) {
  Forward f;
  const bool attention = cfg_.pooling == "attention";
  auto pool = [&](const torch::Tensor& bar, AttentionScorer& attn, Projection& proj, torch::Tensor& logAlpha,
                  torch::Tensor& feat, torch::Tensor& z, torch::Tensor& local, torch::Tensor& score) {
    score = attn->forward(bar).to(torch::kFloat);  // B x N
    logAlpha = torch::log_softmax(score, 1);
    feat = attention ? torch::bmm(logAlpha.exp().unsqueeze(1).to(bar.scalar_type()), bar).squeeze(1) : bar.mean(1);
    z = torch::nn::functional::normalize(proj->forward(feat).to(torch::kFloat),
                                         torch::nn::functional::NormalizeFuncOptions().dim(1));
    if (needLocal)
      local = torch::nn::functional::normalize(proj->forward(bar).to(torch::kFloat),
                                               torch::nn::functional::NormalizeFuncOptions().dim(2));
    feat = feat.to(torch::kFloat);
  };
  AutocastGuard ac(device_, cfg_.amp);
  if (b.video.defined()) {
    auto V = net_->visual->forward(prepVideo(b.video));  // B x C x T' x H' x W'
    f.mapH = V.size(3);
    f.mapW = V.size(4);
    auto Vbar = V.mean(2).flatten(2).transpose(1, 2);  // B x N x C
    pool(Vbar, net_->heads->attnV, net_->heads->projV, f.logAlphaV, f.featV, f.zV, f.localV, f.scoreV);
  }
  if (b.audio.defined()) {
    torch::Tensor spec;
    {
      ac.pause();  // log-mel in fp32
      spec = prepAudio(b.audio);
      if (augment && cfg_.specAugment.enabled()) {  // deterministic: seeded by (seed, augStep_)
        auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg_.seed * 1000003ULL + static_cast<uint64_t>(augStep_++));
        spec =
            spec * specAugmentMask(spec.size(0), spec.size(2), spec.size(3), cfg_.specAugment, gen).to(spec.device());
      }
      ac.resume();
    }
    auto A = net_->audio->forward(spec);    // B x C x F' x T'
    auto Abar = A.mean(3).transpose(1, 2);  // B x M x C
    pool(Abar, net_->heads->attnA, net_->heads->projA, f.logAlphaA, f.featA, f.zA, f.localA, f.scoreA);
  }
  return f;
}

// One training step, in the order of method.md s4: forward, losses, backward,
// and at the end of an accumulation window the optimiser step; then the
// queue takes the batch. Each step below is a member function of its own.
StepResult CmacModel::trainStep(const Batch& b, const StepOptions& o) {
  if (!std::isfinite(o.lr) || o.lr < 0) rangeError("lr must be a finite number >= 0, got " + std::to_string(o.lr));
  if (!(o.lambdaScale >= 0 && o.lambdaScale <= 1)) rangeError("lambdaScale must be in [0, 1]");
  checkBatch(b, true, true, 2);
  applyNumThreads();
  const auto t0 = std::chrono::steady_clock::now();
  // Local features pass through the projection in every preset, so its
  // BatchNorm sees the same inputs (pooled, then local) whatever the losses
  // (method.md s5); where no loss uses them they only update running statistics.
  Forward f = forward(b, true, true);
  Terms t = computeLosses(f, o.lambdaScale, LossUse::train);
  StepResult r = fetchScalars(t, true);
  r.lossScale = fp16Scaling() ? lossScale_ : 1.0;  // the scale this step's backward uses
  if (!r.finite) {
    dropWindow();
  } else {
    backwardScaled(t.total);
    if (++micro_ % cfg_.accumulate == 0) applyGradients(o.lr, r);
    updateQueue(f);
  }
  r.timeMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  recount();
  return r;
}

// method.md s4: L = L_con + lambdaScale (lambda_v L_v + lambda_a L_a), the terms as the preset selects.
CmacModel::Terms CmacModel::computeLosses(const Forward& f, double lambdaScale, LossUse use) const {
  const auto& lo = cfg_.loss;
  const bool train = use == LossUse::train;
  // Negatives beyond the batch, in training only: the queue's filled rows and
  // (gatherNegatives) every rank's embeddings, in which this rank's start at `offset`.
  torch::Tensor qV, qA, keysV, keysA;
  int64_t offset = 0;
  if (train && queueFill_ > 0) {
    qV = queueV_.slice(0, 0, queueFill_);
    qA = queueA_.slice(0, 0, queueFill_);
  }
  if (train && dist_ && cfg_.dist.gatherNegatives && dist_->worldSize() > 1) {
    keysV = dist_->allGatherWithGrad(f.zV);
    keysA = dist_->allGatherWithGrad(f.zA);
    offset = dist_->rank() * f.zV.size(0);
  }
  Terms t;
  t.con = contrastiveLoss(f.zV, f.zA, lo.tau, lo.withinModal, qV, qA, keysV, keysA, offset, &t.acc);
  t.total = t.con;
  // sg(beta): no gradient into the target branch unless targetGrad.
  auto target = [&](const torch::Tensor& logBeta) { return lo.targetGrad ? logBeta : logBeta.detach(); };
  const bool allTerms = !train;  // evaluateLoss reports L_v and L_a even where the preset leaves them out of L
  if (lo.lossV || allTerms)
    t.v = attentionConsistencyLoss(target(f.logBetaV(lo.tauT)), f.logAlphaV);  // KL(beta_v || alpha_v)
  if (lo.lossA || allTerms)
    t.a = attentionConsistencyLoss(target(f.logBetaA(lo.tauT)), f.logAlphaA);  // KL(beta_a || alpha_a)
  if (lo.lossV) t.total = t.total + lambdaScale * lo.lambdaV * t.v;
  if (lo.lossA) t.total = t.total + lambdaScale * lo.lambdaA * t.a;
  return t;
}

// Every reported scalar of method.md s4 (L, L_con, L_v, L_a, retrieval accuracy) in one transfer: one host sync.
StepResult CmacModel::fetchScalars(const Terms& t, bool meanOverRanks) {
  auto zero = torch::zeros({}, t.con.options());
  auto s = torch::stack({t.total.detach(), t.con.detach(), t.v.defined() ? t.v.detach() : zero,
                         t.a.defined() ? t.a.detach() : zero, t.acc})
               .to(torch::kCPU, torch::kDouble);
  // The mean over ranks: every rank then agrees on finiteness (the NaN guard).
  if (meanOverRanks && dist_ && dist_->worldSize() > 1) dist_->allreduceMean({s});
  auto p = s.data_ptr<double>();
  StepResult r;
  r.loss = p[0], r.lossCon = p[1], r.lossV = p[2], r.lossA = p[3], r.retrievalAcc = p[4];
  r.finite = std::isfinite(r.loss);
  return r;
}

bool CmacModel::fp16Scaling() const { return device_.is_cuda() && cfg_.amp == "fp16"; }

// NaN guard (method.md s4, numerically stable): a non-finite loss drops the whole accumulation window.
void CmacModel::dropWindow() {
  optim_->zeroGrad();
  micro_ = 0;
}

// Backward of L / k for k micro-batches per optimiser step, scaled by the fp16 loss scale (architecture.md: AMP).
void CmacModel::backwardScaled(const torch::Tensor& total) {
  ((fp16Scaling() ? total * lossScale_ : total) / static_cast<double>(cfg_.accumulate)).backward();
}

// End of an accumulation window: gradients averaged over ranks (architecture.md:
// bucketed all-reduce), unscaled, measured, clipped, then one optimiser step.
// Non-finite gradients skip the step (fp16: the loss scale halves).
void CmacModel::applyGradients(double lr, StepResult& r) {
  micro_ = 0;
  torch::NoGradGuard ng;
  const bool fp16 = fp16Scaling();
  auto params = net_->parameters();
  std::vector<torch::Tensor> grads;  // handles: in-place changes reach the parameters' gradients
  for (auto& p : params)
    if (p.grad().defined()) grads.push_back(p.mutable_grad());
  if (dist_ && dist_->worldSize() > 1) dist_->allreduceMean(grads);  // sum, then / world
  if (fp16)
    for (auto& g : grads) g.div_(lossScale_);
  r.gradNorm = gradNorm(params);
  if (!std::isfinite(r.gradNorm)) {
    if (fp16) lossScale_ = std::max(1.0, lossScale_ * 0.5), goodSteps_ = 0;
    r.finite = fp16;  // fp16 overflow is expected now and then; fp32 non-finite grads are not
    optim_->zeroGrad();
    return;
  }
  if (cfg_.clipGradNorm > 0 && r.gradNorm > cfg_.clipGradNorm) {
    const double coef = cfg_.clipGradNorm / (r.gradNorm + 1e-6);
    for (auto& g : grads) g.mul_(coef);
  }
  optim_->step(lr);
  optim_->zeroGrad();
  r.stepped = true;
  if (fp16 && ++goodSteps_ >= 2000) lossScale_ *= 2, goodSteps_ = 0;
}

// method.md s4, the FIFO queue: the batch's z_v, z_a replace the oldest rows.
void CmacModel::updateQueue(const Forward& f) {
  const int64_t K = cfg_.loss.queueSize, B = f.zV.size(0);
  if (K == 0) return;
  torch::NoGradGuard ng;
  for (int64_t i = 0; i < B; ++i) {
    queueV_[queuePtr_].copy_(f.zV[i].detach());
    queueA_[queuePtr_].copy_(f.zA[i].detach());
    queuePtr_ = (queuePtr_ + 1) % K;
  }
  queueFill_ = std::min(K, queueFill_ + B);
}

// The same losses as trainStep (computeLosses) in eval mode, without the
// queue or other ranks' negatives, every term reported, nothing updated.
StepResult CmacModel::evaluateLoss(const Batch& b, double lambdaScale) {
  checkBatch(b, true, true, 2);
  applyNumThreads();
  torch::InferenceMode im;
  ModeGuard mg(*net_, false);
  Forward f = forward(b, true);
  return fetchScalars(computeLosses(f, lambdaScale, LossUse::evaluate), false);
}

Embeddings CmacModel::embed(const Batch& b) {
  checkBatch(b, false, false, 1);
  applyNumThreads();
  torch::InferenceMode im;
  ModeGuard mg(*net_, false);
  Forward f = forward(b, false);
  return {f.zV, f.zA, f.featV, f.featA};
}

Maps CmacModel::maps(const Batch& b) {
  checkBatch(b, false, false, 1);
  applyNumThreads();
  torch::InferenceMode im;
  ModeGuard mg(*net_, false);
  Forward f = forward(b, true);
  Maps m;
  const double tauT = cfg_.loss.tauT;
  if (f.logAlphaV.defined()) m.alphaV = f.logAlphaV.exp().view({-1, f.mapH, f.mapW});
  if (f.logAlphaA.defined()) m.alphaA = f.logAlphaA.exp();
  if (f.zA.defined() && f.localV.defined()) m.betaV = f.logBetaV(tauT).exp().view({-1, f.mapH, f.mapW});
  if (f.zV.defined() && f.localA.defined()) m.betaA = f.logBetaA(tauT).exp();
  if (f.scoreV.defined()) m.alphaVLogits = f.scoreV.view({-1, f.mapH, f.mapW});
  if (f.scoreA.defined()) m.alphaALogits = f.scoreA;
  if (f.zA.defined() && f.localV.defined()) m.betaVCos = f.cosV().view({-1, f.mapH, f.mapW});
  if (f.zV.defined() && f.localA.defined()) m.betaACos = f.cosA();
  return m;
}

std::pair<torch::Tensor, torch::Tensor> CmacModel::logmelStats(const torch::Tensor& audio) {
  checkBatch({torch::Tensor(), audio}, false, true, 1);
  applyNumThreads();
  torch::InferenceMode im;
  LogMelMoments mom;
  net_->logmel->accumulate(audio.to(device_), mom);
  return LogMelImpl::meanStd(mom);
}

void CmacModel::setLogmelStats(const torch::Tensor& mean, const torch::Tensor& sd) {
  const int64_t F = cfg_.logmel.nMels;
  for (const auto* t : {&mean, &sd}) {
    const char* name = t == &mean ? "mean" : "std";
    if (!t->defined() || t->dim() != 1 || t->size(0) != F)
      rangeError(std::string("logmel ") + name + " must have shape [" + std::to_string(F) +
                 "] (one per mel bin), got " + (t->defined() ? shapeStr(t->sizes()) : "nothing"));
    if (!torch::isfinite(*t).all().item<bool>()) rangeError(std::string("logmel ") + name + " contains NaN or Inf");
  }
  if (!(sd > 0).all().item<bool>()) rangeError("logmel std must be > 0 in every bin");
  torch::NoGradGuard ng;
  net_->logmel->mean.copy_(mean.to(torch::kFloat));
  net_->logmel->std.copy_(sd.to(torch::kFloat));
}

NamedTensors CmacModel::stateDict() const {
  NamedTensors sd;
  for (const auto& p : net_->named_parameters()) sd.emplace_back(p.key(), p.value());
  for (const auto& bf : net_->named_buffers())
    if (bf.key() != "logmel.window" && bf.key() != "logmel.fb") sd.emplace_back(bf.key(), bf.value());
  return sd;
}

void CmacModel::loadStateDict(const NamedTensors& sd, bool strict) { applyCopies(checkStateDict(sd, strict)); }

WeightCopies CmacModel::checkStateDict(const NamedTensors& sd, bool strict) const {
  const NamedTensors own = stateDict();
  std::map<std::string, torch::Tensor> given;
  for (const auto& [k, v] : sd)
    if (k.rfind("optim.", 0) != 0 && k.rfind("queue.", 0) != 0) given[k] = v;
  // Checkpoints from before the dataset statistics: the identity standardisation.
  for (const auto& [name, dst] : own) {
    if (name == "logmel.mean") given.emplace(name, torch::zeros_like(dst));
    if (name == "logmel.std") given.emplace(name, torch::ones_like(dst));
  }
  StateMatch m = matchState(
      own, given, {"in the checkpoint", "this model", [](const std::string&) {
                     return std::string("create the model with the preset/config the checkpoint was trained with.");
                   }});
  const std::string fix = ". Fix: use a checkpoint of the same preset, or load with strict=false.";
  if (strict && !m.missing.empty())
    valueError("checkpoint lacks " + std::to_string(m.missing.size()) + " weight(s): " + firstFew(m.missing) + fix);
  if (strict && !m.unexpected.empty())
    valueError("checkpoint has " + std::to_string(m.unexpected.size()) +
               " unexpected weight(s): " + firstFew(m.unexpected) + fix);
  return std::move(m.copies);
}

NamedTensors CmacModel::optimizerState() const {
  NamedTensors st = optim_->state();
  st.emplace_back("optim.micro", torch::tensor({micro_}, torch::kLong));
  st.emplace_back("optim.lossScale", torch::tensor({lossScale_}, torch::kDouble));
  st.emplace_back("optim.augStep", torch::tensor({augStep_}, torch::kLong));
  if (cfg_.loss.queueSize > 0) {
    st.emplace_back("queue.v", queueV_);
    st.emplace_back("queue.a", queueA_);
    st.emplace_back("queue.state", torch::tensor({queuePtr_, queueFill_}, torch::kLong));
  }
  return st;
}

void CmacModel::loadOptimizerState(const NamedTensors& st) { applyOptimizerState(checkOptimizerState(st)); }

CmacModel::PreparedState CmacModel::checkOptimizerState(const NamedTensors& st) const {
  PreparedState p;
  p.optim = optim_->prepareState(st);
  const bool queue = cfg_.loss.queueSize > 0;
  for (const auto& [k, v] : st) {
    if (k == "optim.micro" && v.numel() == 1) {
      p.hasMicro = true;
      p.micro = v.to(torch::kLong).item<int64_t>() % cfg_.accumulate;
    } else if (k == "optim.augStep" && v.numel() == 1) {
      p.hasAugStep = true;
      p.augStep = v.to(torch::kLong).item<int64_t>();
    } else if (k == "optim.lossScale" && v.numel() == 1) {
      p.hasLossScale = true;
      p.lossScale = v.item<double>();
    } else if ((k == "queue.v" || k == "queue.a") && queue) {
      if (!v.sizes().equals(queueV_.sizes()))
        valueError("checkpoint queue '" + k + "' has shape " + shapeStr(v.sizes()) + " but this model's is " +
                   shapeStr(queueV_.sizes()) +
                   ". Fix: create the model with the loss.queueSize and embedDim the checkpoint was trained with.");
      (k == "queue.v" ? p.queueV : p.queueA) = v.to(queueV_.options()).clone();
    } else if (k == "queue.state" && v.numel() == 2 && queue) {
      p.hasQueueState = true;
      p.queuePtr = v[0].item<int64_t>() % cfg_.loss.queueSize;
      p.queueFill = std::min(cfg_.loss.queueSize, v[1].item<int64_t>());
    }
  }
  return p;
}

void CmacModel::applyOptimizerState(PreparedState p) {
  optim_->applyState(std::move(p.optim));
  if (p.hasMicro) micro_ = p.micro;
  if (p.hasLossScale) lossScale_ = p.lossScale;
  if (p.hasAugStep) augStep_ = p.augStep;
  torch::NoGradGuard ng;
  if (p.queueV.defined()) queueV_.copy_(p.queueV);
  if (p.queueA.defined()) queueA_.copy_(p.queueA);
  if (p.hasQueueState) {
    queuePtr_ = p.queuePtr;
    queueFill_ = p.queueFill;
  }
}

void CmacModel::save(const std::string& path, const std::map<std::string, std::string>& meta) const {
  NamedTensors all = stateDict();
  for (auto& t : optimizerState()) all.push_back(std::move(t));
  writeSafetensors(path, all, meta);
}

void CmacModel::load(const std::string& path) {
  Safetensors f = readSafetensors(path);
  // Everything is checked before anything is applied: a bad optimiser state
  // must not leave the checkpoint's weights in the model (nothing changes on error).
  WeightCopies weights = checkStateDict(f.tensors, true);
  bool hasOptim = false;
  for (const auto& [k, v] : f.tensors) hasOptim = hasOptim || k == "optim.step";
  std::optional<PreparedState> optim;
  if (hasOptim) optim = checkOptimizerState(f.tensors);
  applyCopies(weights);
  if (optim) applyOptimizerState(std::move(*optim));
  recount();
}

void CmacModel::setTraining(bool on) { net_->train(on); }
bool CmacModel::training() const { return net_->is_training(); }

void CmacModel::to(const std::string& device) {
  auto d = parseDevice(device);
  auto st = optimizerState();
  net_->to(d);
  device_ = d;
  if (queueV_.defined()) {
    queueV_ = queueV_.to(d);
    queueA_ = queueA_.to(d);
  }
  optim_->loadState(st);  // moves the optimiser buffers next to their parameters
}

std::string CmacModel::device() const { return device_.str(); }

int64_t CmacModel::numParameters() const { return countParameters(*net_); }

int64_t CmacModel::stateBytes() const {
  const NamedTensors weights = stateDict(), optim = optim_->state();
  return tensorBytes({&weights, &optim});
}

LiveCounts liveCounts() { return {gLiveModels.load(), gLiveBytes.load()}; }

}  // namespace cmac
