// Building a layer list into a Graph: checking each layer against its kind, PyTorch-style
// names, fused activations, flattens before flat-input layers, an optional condition input.
// Used by the VAE's networks and by blocks whose bodies are layer lists.
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

// Checks already split layers (a block's body) as parse_layers does.
void check_layers(const std::vector<LayerText>& layers, const std::string& what);

}  // namespace vd
