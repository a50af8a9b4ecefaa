// Per-feature standardisation of float data (--standardize): the training set's mean and
// standard deviation of every feature over all ranks, x' = (x - mean) / std for the model,
// and x = x' * std + mean to show its outputs in the data's units.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "data/feature_scaling.hpp"
#include "data/shard.hpp"

namespace vd {

// Sums a buffer of doubles in place over the ranks (an MPI allreduce in a run; a test can sum
// several shards' buffers by hand).
using SumOverRanks = std::function<void(std::span<double>)>;

// The statistics of the whole training set, from this rank's shard and sum_over_ranks:
// mean_d = (1/N) sum x_d and std_d = sqrt((1/N) sum (x_d - mean_d)^2) (population std, as
// numpy's default ddof = 0), N the rows of all ranks. Two sweeps over the shard (in memory, or
// read twice from the file when it is streamed): the sums of x, then the sums of squared deviations
// from the global mean, each in double and summed over the ranks. The one-sweep formula sum x^2 - N
// mean^2 would cancel for features whose offset dwarfs their spread (offset 1e4, std 1e-2 loses 12
// of double's 16 digits), which is exactly the data standardisation is for. A feature with std 0
// (constant) gets std 1: its standardised value is 0. Collective: every rank calls it.
// Throws vd::ConfigError for uint8 data (use float data; uint8 images are scaled to [0, 1]).
FeatureScaling feature_scaling(const Shard& shard, const SumOverRanks& sum_over_ranks);

// Standardises the shard's values (in place, or as a streamed shard reads them); throws
// vd::ShapeError when the sizes differ.
void standardize(Shard& shard, const FeatureScaling& scaling);

}  // namespace vd
