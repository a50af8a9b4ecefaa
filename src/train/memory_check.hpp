// The start-up memory check: a lower bound of what a run will allocate per rank (parameters and
// their optimiser state, the training and evaluation batches, the importance-weighted bound's
// weights), compared with the memory this rank can have, so that a size too large for memory is
// refused before training, naming the option; and the message for a std::bad_alloc at start-up.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/options.hpp"

namespace vd {

class Comm;
class ParamStore;
class Shard;
class LatentModel;

// One part of a run's memory: which option sizes it, and a lower bound of its bytes per rank.
struct MemoryPart {
  std::string option;  // "--batch-size 100000000", "--encoder 'fc 999999999'", ...
  std::string what;    // "the training batch: 100000000 rows x 13.2 KB", ...
  double bytes = 0;
};

// What the estimate is made of, per rank: numbers the model and the data give.
struct MemoryInputs {
  double param_floats = 0;       // the ParamStore's size() (padding included)
  std::string largest_param;     // "encoder.fc1.weight [999999999, 784]"
  std::string param_option;      // the option that sizes the largest parameter
  double activation_floats = 0;  // per row: every graph value of the encoder and decoder
  int64_t data_size = 0;         // D, values per sample
  int64_t latent_dim = 0;        // L
  int64_t classes = 0;           // K, 0 when not conditional
  int64_t batch_size = 0;        // --batch-size
  int64_t eval_batch_size = 0;   // --eval-batch-size
  int64_t eval_rows = 0;         // rows of this rank's largest evaluated shard (0: none)
  int64_t iw_samples = 0;        // --iw-samples, 0 = off
  int64_t iw_test_rows = 0;      // rows of this rank's test shard (0: no test data)
  int64_t grid_size = 0;         // --grid-size
};

// The parts of the estimate: parameters, the prior grid's fixed draws, the training batch, the
// evaluation batch and the importance-weighted bound (parts of zero bytes are left out). Each is
// a lower bound of what the run allocates for it; `option` names the option that sizes it.
std::vector<MemoryPart> memory_parts(const MemoryInputs& in);
// The lower bound of the whole run: the parameters and the grid's draws, which live throughout,
// plus the largest of the batch parts (the model's workspaces grow to the largest batch).
double memory_lower_bound(const std::vector<MemoryPart>& parts);

// The memory this process can still allocate: /proc/meminfo's MemAvailable (else the free
// physical pages), at most the cgroup's limit minus its usage, and at most RLIMIT_AS minus the
// address space in use. `source` says which bounded it.
struct MemoryAvailable {
  double bytes = 0;
  std::string source;
};
MemoryAvailable memory_available();

// Throws vd::ConfigError when the lower bound exceeds `available` bytes (this rank's share),
// naming the option of the largest part, its bytes, the run's bytes and the memory available.
void check_memory(const std::vector<MemoryPart>& parts, double available,
                  const std::string& available_source);

// The estimate of this run (the model built, its parameters registered in `store` but not yet
// allocated; the validation and test shards, either may be null), checked on every rank with
// the largest parts of any rank and the smallest memory of any rank, so every rank throws the
// same vd::ConfigError or none does. Collective.
void check_run_memory(const Options& opt, const LatentModel& model, const ParamStore& store,
                      const Shard* val, const Shard* test, const Comm& comm);

// Rows per batch of the importance-weighted bound: at most --eval-batch-size and 500, and few
// enough that the batch's log-weights [rows, k] (doubles) stay within kIwWeightsBytes; at least
// one. The default settings (k = 100) keep 500 rows.
inline constexpr int64_t kIwWeightsBytes = int64_t{256} << 20;
int64_t iw_rows_per_batch(int64_t eval_batch_size, int64_t k);

// The message for a std::bad_alloc while a run starts: the options that size memory, the likely
// one (the furthest above its default) first, and what to do.
std::string start_up_out_of_memory(const Options& opt);

// "13.2 KB", "1.3 TB": bytes in decimal units, for the messages.
std::string memory_text(double bytes);

}  // namespace vd
