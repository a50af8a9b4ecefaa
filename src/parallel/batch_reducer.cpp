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

void MpiBatchReducer::gather(std::span<const double> mine, std::vector<double>& all,
                             size_t& offset) {
  const int P = comm_.size();
  int count = static_cast<int>(mine.size());
  std::vector<int> counts(static_cast<size_t>(P)), displs(static_cast<size_t>(P));
  VD_MPI_CHECK(MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, comm_.raw()));
  size_t total = 0;
  for (int r = 0; r < P; ++r) {
    displs[static_cast<size_t>(r)] = static_cast<int>(total);
    if (r == comm_.rank()) offset = total;
    total += static_cast<size_t>(counts[static_cast<size_t>(r)]);
  }
  all.resize(total);
  VD_MPI_CHECK(MPI_Allgatherv(mine.data(), count, MPI_DOUBLE, all.data(), counts.data(),
                              displs.data(), MPI_DOUBLE, comm_.raw()));
}

}  // namespace vd
