// The BatchReducer of data-parallel training: one non-blocking MPI_Iallreduce (sum) of a few
// doubles over the world, started and finished by the model (free bits: the per-dimension
// KL sums of the global batch), and an MPI_Allgatherv of per-sample values (beta-TCVAE: every
// rank's mu and logvar).
#pragma once
#include <mpi.h>

#include "nn/context.hpp"
#include "parallel/comm.hpp"

namespace vd {

class MpiBatchReducer : public BatchReducer {
 public:
  explicit MpiBatchReducer(const Comm& comm) : comm_(comm) {}
  ~MpiBatchReducer() override;
  // values must stay alive and untouched until finish().
  void start(std::span<double> values) override;
  void finish() override;
  void gather(std::span<const double> mine, std::vector<double>& all, size_t& offset) override;

 private:
  const Comm& comm_;
  MPI_Request request_ = MPI_REQUEST_NULL;
};

}  // namespace vd
