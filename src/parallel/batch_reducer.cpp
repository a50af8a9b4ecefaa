// MpiBatchReducer: MPI_Iallreduce in place, waited for in finish().
#include "parallel/batch_reducer.hpp"

#include "core/error.hpp"

namespace vd {

MpiBatchReducer::~MpiBatchReducer() {
  // An exception between start and finish: the request must not outlive its buffer.
  if (request_ != MPI_REQUEST_NULL) MPI_Wait(&request_, MPI_STATUS_IGNORE);
}

void MpiBatchReducer::start(std::span<double> values) {
  VD_CHECK(request_ == MPI_REQUEST_NULL, DistError,
           "a batch reduction was started before the previous one finished");
  VD_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()),
                              MPI_DOUBLE, MPI_SUM, comm_.raw(), &request_));
}

void MpiBatchReducer::finish() {
  VD_MPI_CHECK(MPI_Wait(&request_, MPI_STATUS_IGNORE));
}

}  // namespace vd
