// The architecture written in the config: a comma-separated list of layers for the encoder
// and for the decoder ("conv 32 k4 s2 p1, relu, flatten, fc 256, relu"), parsed and built
// into a Sequential with PyTorch-style parameter names.
#pragma once
#include <string>
#include <vector>

#include "nn/conv.hpp"
#include "nn/layer.hpp"
#include "nn/param_store.hpp"
#include "nn/sequential.hpp"

namespace vd {

// One layer as written. Syntax (whitespace-separated words, layers separated by commas):
//   fc N                     fully connected, N outputs          (nn.Linear)
//   conv C kK [sS] [pP]      convolution, C output channels, K x K kernel, stride S (1),
//                            padding P (0)                       (nn.Conv2d)
//   convt C kK [sS] [pP] [opO]  transposed convolution, output padding O (0)
//                                                                (nn.ConvTranspose2d)
//   relu                     fused into the fc/conv/convt before it when there is one
//   flatten                  C x H x W -> C*H*W (inserted before an fc on image input)
//   reshape CxHxW            a flat vector -> C x H x W
struct LayerSpec {
  enum class Kind { Fc, Conv, ConvT, Relu, Flatten, Reshape };
  Kind kind = Kind::Fc;
  int units = 0;     // fc
  ConvSpec conv;     // conv, convt
  Shape shape;       // reshape
  std::string text;  // as written, for messages
};

// Throws vd::ConfigError naming `what` (e.g. "--encoder") and the bad layer.
std::vector<LayerSpec> parse_layers(const std::string& text, const std::string& what);

// The classic MLP spelled in this syntax: hidden {512, 256} gives "fc 512, relu, fc 256, relu"
// for the encoder and "fc 256, relu, fc 512, relu, fc D" for the decoder.
std::string mlp_encoder_spec(const std::vector<int>& hidden);
std::string mlp_decoder_spec(const std::vector<int>& hidden, int64_t data_size);

// Appends the layers to `seq` (whose current output is their input). Parameter layers are
// named "<prefix>.fc1", "<prefix>.conv1", "<prefix>.convt1", ... counted per kind; with
// `last_is_out` the last parameter layer is "<prefix>.out" instead (the decoder's output).
// A relu right after an fc/conv/convt is fused into it. With classes > 0 (a conditional
// model) the one-hot label *condition [N, classes] is concatenated to the input of the first
// fc layer. Throws vd::ConfigError naming the layer and both shapes when a layer does not fit
// its input.
void build_layers(Sequential& seq, ParamStore& store, const std::string& prefix,
                  const std::vector<LayerSpec>& specs, bool last_is_out, const std::string& what,
                  int classes = 0, const float* const* condition = nullptr);

}  // namespace vd
