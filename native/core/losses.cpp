#include "losses.h"

#include <torch/torch.h>

namespace cmac {

namespace {
// Row-wise -log(e_pos / sum e_neg-or-pos) with log-sum-exp for stability.
torch::Tensor infoNce(const torch::Tensor& anchor, const torch::Tensor& other, double tau, bool withinModal,
                      const torch::Tensor& queueSame, const torch::Tensor& queueOther) {
  const auto B = anchor.size(0);
  auto cross = torch::matmul(anchor, other.t()) / tau;  // B x B, positives on the diagonal
  std::vector<torch::Tensor> cols{cross};
  if (withinModal) {
    auto eye = torch::eye(B, torch::TensorOptions().dtype(torch::kBool).device(anchor.device()));
    cols.push_back((torch::matmul(anchor, anchor.t()) / tau).masked_fill(eye, -std::numeric_limits<double>::infinity()));
  }
  if (queueOther.defined() && queueOther.numel() > 0) cols.push_back(torch::matmul(anchor, queueOther.t()) / tau);
  if (withinModal && queueSame.defined() && queueSame.numel() > 0)
    cols.push_back(torch::matmul(anchor, queueSame.t()) / tau);
  auto logits = torch::cat(cols, 1);
  return torch::logsumexp(logits, 1) - cross.diagonal();
}
}  // namespace

torch::Tensor contrastiveLoss(const torch::Tensor& zV, const torch::Tensor& zA, double tau, bool withinModal,
                              const torch::Tensor& queueV, const torch::Tensor& queueA) {
  auto lv = infoNce(zV, zA, tau, withinModal, queueV, queueA);
  auto la = infoNce(zA, zV, tau, withinModal, queueA, queueV);
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
