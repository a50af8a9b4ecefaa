// GradientSync: the optimizer step of data-parallel training. Ranks that all share one node
// keep ONE copy of the parameters and Adam moments in an MPI-3 shared-memory window; each rank's
// backward writes its own gradient slot, then each rank sums one slice of all slots (in rank
// order) and applies Adam to that slice only, so no rank copies or updates the whole model.
// Across nodes it falls back to MPI_Allreduce of the flat gradient buffer and a full Adam step.
#pragma once
#include <mpi.h>

#include <span>
#include <string>

#include "nn/param_store.hpp"
#include "optim/adam.hpp"
#include "parallel/comm.hpp"

namespace vd {

class GradientSync {
 public:
  // Collective over `comm`. Chooses the shared-memory path when every rank is on this node
  // and the environment variable VAE_DIST_GRAD_SYNC is not "allreduce"; then the store's
  // parameters and gradients and Adam's moments move into the shared window (with their
  // current values).
  GradientSync(const Comm& comm, ParamStore& store, Adam& adam);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Collective, after every rank's backward: sums the gradients over ranks and applies one
  // Adam step with learning rate lr, leaving identical parameters on every rank.
  void update(double lr);
  // True when the parameters and moments are one copy shared by all ranks: then only one
  // rank may write them (initialisation, restore) before barrier().
  bool shares_state() const { return win_ != MPI_WIN_NULL; }
  void barrier();
  // "single rank", "shared memory" or "allreduce".
  const std::string& method() const { return method_; }

 private:
  const Comm& comm_;
  ParamStore& store_;
  Adam& adam_;
  std::string method_;
  MPI_Win win_ = MPI_WIN_NULL;
  float* base_ = nullptr;  // [P gradient slots][sum][params][exp_avg][exp_avg_sq], n_pad each
  size_t n_ = 0, n_pad_ = 0;
  size_t slice_begin_ = 0, slice_end_ = 0;  // this rank's share of the update
};

}  // namespace vd
