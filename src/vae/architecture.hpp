// The architecture written in the config: a comma-separated list of layers for the encoder
// and for the decoder ("conv 32 k4 s2 p1, relu, flatten, fc 256, relu"), checked against the
// layer kinds of nn/registry.hpp and built into a Graph with PyTorch-style parameter names.
#pragma once
#include <string>
#include <vector>

#include "nn/graph.hpp"
#include "nn/param_store.hpp"
#include "nn/registry.hpp"

namespace vd {

// The layers of `text`, each checked by its kind. Throws vd::ConfigError naming `what` (e.g.
// "encoder") and the bad layer, with the syntax of every kind.
std::vector<LayerText> parse_layers(const std::string& text, const std::string& what);

// The classic MLP spelled in this syntax: hidden {512, 256} gives "fc 512, relu, fc 256, relu"
// for the encoder and "fc 256, relu, fc 512, relu, fc D" for the decoder.
std::string mlp_encoder_spec(const std::vector<int>& hidden);
std::string mlp_decoder_spec(const std::vector<int>& hidden, int64_t data_size);

// Appends the layers to `graph`, reading its last value. Layers with parameters are named
// "<prefix>.fc1", "<prefix>.conv1", "<prefix>.convt1", ... counted per kind; with
// `last_is_out` the last of them is "<prefix>.out" instead (the decoder's output). An
// activation right after a layer that fuses one runs inside it. A layer that reads a flat
// input gets a flatten before it on an image; with `condition` (a graph value, a conditional
// model's one-hot label) the first such layer reads [input, condition] concatenated. Throws
// vd::ConfigError naming the layer and both shapes when a layer does not fit its input, and
// when `condition` is given but no layer reads a flat input.
void build_layers(Graph& graph, ParamStore& store, const std::string& prefix,
                  const std::vector<LayerText>& layers, bool last_is_out, const std::string& what,
                  Graph::Value condition = -1);

}  // namespace vd
