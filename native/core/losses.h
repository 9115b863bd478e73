// The CMAC losses, method.md section 4. Pure functions of tensors so they
// can be gradient-checked in double precision and compared with naive loops.
#pragma once
#include <torch/types.h>

namespace cmac {

// Remoulded cross-modal contrastive loss. zV, zA: B x D, L2-normalised.
// Negatives for anchor z_v^i: z_a^j (all j, the positive included in the
// denominator) and, when withinModal, z_v^j (j != i); symmetric for z_a^i.
// queueV/queueA (K x D, may be undefined) add past embeddings as negatives.
// keysV/keysA (may be undefined): the embeddings of every rank (all-gathered),
// in which this rank's batch starts at row `offset`; the anchors stay local.
// Returns the scalar mean(l_v, l_a).
// accuracy (optional): set to the in-batch retrieval accuracy read off the
// same cross-modal logits, mean over both directions of [argmax_j <z_v^i, z_a^j>
// is the positive] (0-dim float on the device, no gradient, no host sync).
torch::Tensor contrastiveLoss(const torch::Tensor& zV, const torch::Tensor& zA, double tau, bool withinModal,
                              const torch::Tensor& queueV = {}, const torch::Tensor& queueA = {},
                              const torch::Tensor& keysV = {}, const torch::Tensor& keysA = {}, int64_t offset = 0,
                              torch::Tensor* accuracy = nullptr);

// Cross-modally guided target log-probabilities, B x N:
// log softmax_n(<z, local_n> / tauT). z: B x D, local: B x N x D.
torch::Tensor guidedTargetLogits(const torch::Tensor& z, const torch::Tensor& local, double tauT);

// mean_i KL(target_i || alpha_i) from log-probabilities (B x N each).
torch::Tensor attentionConsistencyLoss(const torch::Tensor& logTarget, const torch::Tensor& logAlpha);

}  // namespace cmac
