// The architecture written in the config: a comma-separated list of layers for the encoder
// and for the decoder ("conv 32 k4 s2 p1, relu, flatten, fc 256, relu"), built by nn/builder
// into a Graph; and the classic MLP spelled in that syntax.
#pragma once
#include <string>
#include <vector>

#include "nn/builder.hpp"

namespace vd {

// The classic MLP spelled in this syntax: hidden {512, 256} gives "fc 512, relu, fc 256, relu"
// for the encoder and "fc 256, relu, fc 512, relu, fc D" for the decoder.
std::string mlp_encoder_spec(const std::vector<int>& hidden);
std::string mlp_decoder_spec(const std::vector<int>& hidden, int64_t data_size);

}  // namespace vd
