#include "losses.h"

#include <torch/torch.h>

namespace cmac {

namespace {
// Row-wise -log(e_pos / sum e_neg-or-pos) with log-sum-exp for stability.
// keysSame/keysOther: the candidates (this rank's batch at rows offset..offset+B).
// hits (optional): set to the float 0/1 vector [argmax of the cross-modal row is the positive].
torch::Tensor infoNce(const torch::Tensor& anchor, const torch::Tensor& keysSame, const torch::Tensor& keysOther,
                      int64_t offset, double tau, bool withinModal, const torch::Tensor& queueSame,
                      const torch::Tensor& queueOther, torch::Tensor* hits) {
  const auto B = anchor.size(0);
  auto self =
      (torch::arange(B, torch::TensorOptions().dtype(torch::kLong).device(anchor.device())) + offset).unsqueeze(1);
  auto cross = torch::matmul(anchor, keysOther.t()) / tau;  // positives at (i, offset + i)
  if (hits) {
    torch::NoGradGuard ng;
    *hits = cross.detach().argmax(1).eq(self.squeeze(1)).to(torch::kFloat);
  }
  std::vector<torch::Tensor> cols{cross};
  if (withinModal) {
    auto mask = torch::zeros_like(cross, torch::TensorOptions().dtype(torch::kBool)).scatter_(1, self, true);
    cols.push_back(
        (torch::matmul(anchor, keysSame.t()) / tau).masked_fill(mask, -std::numeric_limits<double>::infinity()));
  }
  if (queueOther.defined() && queueOther.numel() > 0) cols.push_back(torch::matmul(anchor, queueOther.t()) / tau);
  if (withinModal && queueSame.defined() && queueSame.numel() > 0)
    cols.push_back(torch::matmul(anchor, queueSame.t()) / tau);
  auto logits = torch::cat(cols, 1);
  return torch::logsumexp(logits, 1) - cross.gather(1, self).squeeze(1);
}
}  // namespace

torch::Tensor contrastiveLoss(const torch::Tensor& zV, const torch::Tensor& zA, double tau, bool withinModal,
                              const torch::Tensor& queueV, const torch::Tensor& queueA, const torch::Tensor& keysV,
                              const torch::Tensor& keysA, int64_t offset, torch::Tensor* accuracy) {
  const auto& kV = keysV.defined() ? keysV : zV;
  const auto& kA = keysA.defined() ? keysA : zA;
  torch::Tensor hitsV, hitsA;
  auto lv = infoNce(zV, kV, kA, offset, tau, withinModal, queueV, queueA, accuracy ? &hitsV : nullptr);
  auto la = infoNce(zA, kA, kV, offset, tau, withinModal, queueA, queueV, accuracy ? &hitsA : nullptr);
  if (accuracy) *accuracy = 0.5 * (hitsV.mean() + hitsA.mean());
  return 0.5 * (lv.mean() + la.mean());
}

torch::Tensor guidedTargetLogits(const torch::Tensor& z, const torch::Tensor& local, double tauT) {
  auto sim = torch::bmm(local, z.unsqueeze(2)).squeeze(2) / tauT;  // B x N
  return torch::log_softmax(sim, 1);
}

torch::Tensor attentionConsistencyLoss(const torch::Tensor& logTarget, const torch::Tensor& logAlpha) {
  return (logTarget.exp() * (logTarget - logAlpha)).sum(1).mean();
}

}  // namespace cmac
