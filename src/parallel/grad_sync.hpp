// GradientSync: the gradient sum and optimizer step of data-parallel training, with the ranks'
// stop requests folded into the same exchange (one latency-bound exchange per step).
//   one node:   the ranks keep ONE copy of the parameters and Adam moments in an MPI-3 shared
//               window; each writes its gradient slot, then sums one slice of all slots (in
//               rank order) and updates that slice only.
//   many nodes: the same node-shared model, plus one allreduce per slice among the ranks of
//               equal local rank on every node (of the node sums), then the slice's update.
//               With VAE_DIST_OVERLAP=1 the slices go in buckets started during backward as
//               the layers' gradients become final (MPI_Iallreduce), so the transfer overlaps
//               the rest of backward, and each bucket's update runs as soon as its sum
//               arrives. Off by default: where the kernel's TCP work shares the cores that
//               train, it measured no faster (docs/benchmarks.md, the two-host runs).
//   otherwise (nodes with unequal rank counts, or VAE_DIST_GRAD_SYNC=allreduce): one
//               MPI_Allreduce of the whole gradient and a full Adam step on every rank.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "nn/context.hpp"
#include "nn/param_store.hpp"
#include "optim/adam.hpp"
#include "optim/ema.hpp"
#include "parallel/comm.hpp"

namespace vd {

class GradientSync : public GradListener {
 public:
  // Collective over `comm`. Picks the method (above) and moves the store's parameters and
  // gradients, Adam's moments and the moving average `ema` (optional: every rank passes one
  // or none) into the node-shared window where it uses one (values kept). Each applied update
  // then averages the new parameters into `ema`, each rank its slice where the ranks share
  // one copy. VAE_DIST_BUCKET_KB sets the largest overlapped bucket (default 256).
  GradientSync(const Comm& comm, ParamStore& store, Adam& adam, Ema* ema = nullptr);
  ~GradientSync() override;
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Set as the Context's grad_listener during a training step: after layer `layer`'s backward
  // its parameters' gradients are final, and buckets whose gradients are all final on every
  // rank of the node start their exchange across nodes. Without these calls update() does all.
  void backward_done(std::span<const size_t> entries) override;

  // Collective, after every rank's backward: sums the gradients over ranks and applies one
  // Adam step with learning rate lr, leaving identical parameters on every rank. `signal` is
  // this rank's stop request (0, SIGTERM or SIGINT); returns the request every rank agrees
  // on: SIGTERM if any rank had one, else SIGINT if any had one, else 0.
  int update(double lr, int signal = 0) { return update_checked(lr, signal, false).signal; }
  // The same, with this rank's verdict on its own loss and gradient (`non_finite` when either
  // held a NaN or infinity) and its loss sum. They ride with the stop counts, so every rank
  // learns of a divergence on any rank, and the global loss, at the same step at no extra cost.
  struct Agreed {
    int signal = 0;        // as update() returns it
    int non_finite = 0;    // ranks that reported a non-finite loss or gradient this step
    bool applied = true;   // false when the gate skipped the update
    double loss_sum = 0;   // the ranks' loss sums added (in float, in a fixed order)
    double grad_norm = 0;  // the summed gradient's L2 norm before clipping (with a gate)
  };
  Agreed update_checked(double lr, int signal, bool non_finite, double loss_sum = 0);
  // The figures every rank has before the update; the same bits on every rank.
  struct Figures {
    double loss_sum = 0;
    double grad_norm = 0;
    int non_finite = 0;
  };
  // Consulted on every rank before each update; false skips the update everywhere (no Adam
  // step: parameters, moments and the step count stay). Costs one pass over this rank's part
  // of the gradient and, on the sharded methods, one node barrier per step (as clipping).
  void set_gate(std::function<bool(const Figures&)> gate) { gate_ = std::move(gate); }
  // Scales the summed gradient so its global L2 norm is at most max_norm before each update,
  // as torch.nn.utils.clip_grad_norm_ does (0 = off, the default, and then costs nothing).
  // The sharded methods add one node barrier per step for the slices' sums of squares.
  void set_grad_clip(double max_norm) { clip_ = max_norm; }
  // True when the parameters and moments are one copy shared by the ranks of a node: then
  // only one rank per node may write them (initialisation, restore) before barrier().
  bool shares_state() const { return win_ != MPI_WIN_NULL; }
  void barrier();
  // Collective, after the ranks that write the model (writes_model()) have initialised or
  // restored it: makes every rank's parameters (and moving average) rank 0's (one copy per
  // node, or per rank).
  void share_initial_state();
  // "single rank", "shared memory", "shared memory + allreduce across N nodes", "allreduce".
  const std::string& method() const { return method_; }
  // Ranks that write the shared model: rank 0 of each node (every rank without sharing).
  bool writes_model() const { return !shares_state() || comm_.local_rank() == 0; }

 private:
  enum class Mode { Single, Node, Nodes, Allreduce };
  struct Bucket {
    size_t begin, end;  // floats of the flat gradient
  };
  static constexpr size_t kHead = 16;  // floats before each region: the counts ride there

  float* slot(size_t r) const { return base_ + r * stride_ + kHead; }
  float* sum() const;  // the node sum of every slot ([-4, 0): the counts and loss sum)
  int64_t* progress(size_t r) const;
  void publish_progress(size_t frontier);
  bool node_ready(size_t begin) const;
  void start_ready_buckets();
  void poll_arrivals();
  static void pause();
  void sum_slots(size_t begin, size_t end, bool with_counts);
  Agreed update_node(double lr);
  Agreed update_nodes(double lr);
  // Adam's update of elements [begin, end) for the step begun, then the moving average's of
  // the same elements, a block at a time so the average reads the new parameters from cache.
  void apply_update(std::span<const float> grads, size_t begin, size_t end, double lr);
  void step_update(std::span<const float> grads, size_t begin, size_t end, double lr);
  bool needs_norm() const { return clip_ > 0 || static_cast<bool>(gate_); }
  // The gate's verdict on the agreed counts and squared norm (true without a gate), noted in a.
  bool admit(Agreed& a, double sum_sq) const;
  // Clipping: the coefficient for a squared global norm, applied to grads [begin, end).
  void clip_range(float* grads, size_t begin, size_t end, double sum_sq) const;
  // Sharded: shares this rank's sum of squares over its slice of the node sum (each slice is
  // the global sum by then) with the node, and returns the global sum (one node barrier).
  double slice_sum_sq();

  const Comm& comm_;
  ParamStore& store_;
  Adam& adam_;
  Ema* ema_ = nullptr;
  Mode mode_ = Mode::Single;
  std::string method_;
  MPI_Win win_ = MPI_WIN_NULL;
  MPI_Comm cross_ = MPI_COMM_NULL;  // ranks of this local rank on every node
  bool overlap_ = false;            // VAE_DIST_OVERLAP=1: buckets during backward
  double clip_ = 0;                 // --grad-clip (0 = off)
  std::function<bool(const Figures&)> gate_;
  float* base_ = nullptr;       // [header][P slots][sum][params][exp_avg][exp_avg_sq][ema]
  float* header_ = nullptr;     // per local rank: counts, progress; then the result
  float* own_grads_ = nullptr;  // Allreduce mode: gradients with the counts before them
  size_t n_ = 0, n_pad_ = 0, stride_ = 0, local_ = 1;
  size_t slice_begin_ = 0, slice_end_ = 0;  // this rank's share of the update
  // Many nodes: this rank's buckets, highest offsets first (the order backward finishes them
  // and, on every node alike, the order the exchanges start).
  std::vector<Bucket> buckets_;
  std::vector<MPI_Request> requests_;  // per bucket; MPI_REQUEST_NULL once its sum arrived
  std::vector<char> arrived_;          // per bucket: its sum is here (Adam not yet applied)
  std::vector<int> indices_;           // scratch for MPI_Testsome
  size_t next_bucket_ = 0;
  int64_t step_ = 0;  // updates so far: progress counters grow across steps, never reset
  // Parameter entries in offset order, the layer of each, and which are final this step.
  std::vector<size_t> entry_offsets_;
  std::vector<char> entry_done_;
  size_t frontier_entry_ = 0;  // entries at index >= this are all final
};

}  // namespace vd
